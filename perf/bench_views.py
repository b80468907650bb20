"""Reference-view rendering cost: views/s and CPU-seconds per shape (20 views + depth + patch xyz).

Usage: python perf/bench_views.py [--resolution 256] [--shapes 6] [--repeats 3] [--sheet docs/reference-views.png]
Prints medians over repeats, for procedural and real PartNet chairs, with the share of time
spent inside Blender's render call. Runs in-process with one warm Blender (what each worker does).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from brokenchairs.blender_scripts import scene as sc
from brokenchairs.blender_scripts.views import ViewRenderer
from brokenchairs.generation.shapes.partnet import iter_shapes
from brokenchairs.generation.shapes.procedural import synth_chair
from brokenchairs.generation.units.tasks import ViewsConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--shapes", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--partnet", type=Path, default=ROOT.parent / "shared" / "data" / "partnet-chairs")
    ap.add_argument("--sheet", type=Path, default=None, help="write the 20 views of one chair as a PNG")
    args = ap.parse_args()

    cfg = ViewsConfig(resolution=args.resolution)
    renderer = ViewRenderer(cfg.resolution, cfg.stride, cfg.fov_deg)
    render_time = [0.0]
    original = sc.render

    def timed_render():
        t = time.perf_counter()
        original()
        render_time[0] += time.perf_counter() - t

    sc.render = timed_render
    sets = {"procedural": [synth_chair(0, i) for i in range(args.shapes)],
            "partnet": list(iter_shapes(args.partnet)) if args.partnet.is_dir() else []}
    renderer.render(sets["procedural"][0], cfg.viewpoints())  # warm-up
    print(f"reference views: {cfg.views} views/shape, {cfg.resolution}x{cfg.resolution}, Workbench, 1 process")
    print(f"{'shapes':<12}{'n':>4}{'wall s/shape':>14}{'CPU s/shape':>13}{'views/s':>10}{'in render':>11}")
    for name, shapes in sets.items():
        if not shapes:
            continue
        walls, cpus, shares = [], [], []
        for _ in range(args.repeats):
            render_time[0] = 0.0
            w0, c0 = time.perf_counter(), time.process_time()
            for s in shapes:
                renderer.render(s, cfg.viewpoints())
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            walls.append(wall / len(shapes))
            cpus.append(cpu / len(shapes))
            shares.append(render_time[0] / wall)
        w = statistics.median(walls)
        print(f"{name:<12}{len(shapes):>4}{w:>14.3f}{statistics.median(cpus):>13.3f}{cfg.views / w:>10.1f}"
              f"{statistics.median(shares):>10.0%}")
    if args.sheet:
        from PIL import Image

        vs = renderer.render(sets["procedural"][min(5, len(sets["procedural"]) - 1)], cfg.viewpoints())
        rows = [np.concatenate(list(vs.gray[r * 5:(r + 1) * 5]), axis=1) for r in range(4)]
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(rows, axis=0)).save(args.sheet)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
