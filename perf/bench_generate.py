"""Query generation cost at the production settings: images/s, CPU-s per kept image, render share.

Usage: python perf/bench_generate.py [--shapes 6] [--resolution 256] [--samples 16] [--workers 2] [--out DIR]
Runs `generate` on procedural chairs (all types) into a fresh folder and prints the figures the
generate issue asks for. CPU-seconds = wall time x cores in use (the workers keep both busy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from brokenchairs.generation.generate import KINDS, GenerateConfig, generate
from brokenchairs.generation.materials.library import synth_library
from brokenchairs.generation.render_region import OBJECT_SAMPLES
from brokenchairs.generation.sources import procedural_refs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", type=int, default=6)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--samples", type=int, default=OBJECT_SAMPLES)
    ap.add_argument("--views", type=int, default=0, help="fixed views per variant (default: Table 1 law)")
    ap.add_argument("--twins", action="store_true")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the dataset here (default: a temp folder)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-generate-"))
    if out.exists() and args.out:
        shutil.rmtree(out)
    mats = out / "materials"
    list(synth_library(40, args.seed, mats, 512))
    cfg = GenerateConfig(anomalies=KINDS, views_per_variant=args.views, resolution=args.resolution,
                         samples=args.samples, seed=args.seed, shard_size=8, twins=args.twins,
                         materials=str(mats.resolve()))
    cores = min(os.cpu_count() or 1, args.workers * max(1, (os.cpu_count() or 1) // args.workers))
    t0 = time.perf_counter()
    stats = generate(out, procedural_refs(args.shapes, args.seed), cfg, workers=args.workers)
    wall = time.perf_counter() - t0
    kept = sum(stats.kept.values())
    views = args.views or "Table-1"
    print(f"generate: {args.shapes} procedural chairs x {len(KINDS)} types x {views} views, "
          f"{args.resolution}x{args.resolution}, ground pass + object pass at {args.samples} spp + OIDN, {args.workers} workers on {cores} cores, "
          f"twins {'on' if args.twins else 'off'}")
    print(f"renders              {stats.images_rendered} full quality + {stats.mask_renders} masks-only  "
          f"({stats.images_rendered / wall:.2f} full renders/s)")
    print(f"kept queries         {kept}  ({kept / wall:.2f} kept/s)  {dict(sorted(stats.kept.items()))}")
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    print(f"CPU-s per kept image {wall * cores / kept:.2f} (wall x cores)   CPU-s per full render {wall * cores / stats.images_rendered:.2f}")
    print(f"  inside the workers {stats.worker_seconds * threads / kept:.2f} per kept image (without worker start-up and "
          f"the idle tail of a run this small: what a long run converges to)")
    print(f"time in render call  {stats.render_seconds / stats.worker_seconds:.0%} of worker time")
    print(f"wall                 {wall:.1f} s")
    print(f"rejections           {dict(sorted(stats.rejections.items()))}")
    for kind in KINDS:
        if kind == "normal":
            continue
        k = stats.kept.get(kind, 0)
        print(f"  kept {kind:<9} {k}")
    print(f"dataset: {out}")


if __name__ == "__main__":
    main()
