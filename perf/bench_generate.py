"""Query generation cost at the production settings: images/s, CPU-s per kept image, render share.

Usage: python perf/bench_generate.py [--shapes 6] [--real 0] [--resolution 256] [--samples 8] [--workers 2] [--repeats 3]
                                     [--calibrate] [--no-pin] [--out DIR]
Runs `generate` on procedural chairs (all types) into a fresh folder and prints the figures the
generate issue asks for; ``--real N`` runs it on the first N real PartNet chairs of
../shared/data/partnet-chairs (or $BROKENCHAIRS_PARTNET) instead, meshes of up to ~50k triangles.
CPU-seconds = wall time x cores in use (the workers keep both busy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brokenchairs.generation.pipeline.generate import KINDS, GenerateConfig, generate
from brokenchairs.generation.render.materials.library import synth_library
from brokenchairs.generation.render.render_settings import OBJECT_SAMPLES
from brokenchairs.generation.shapes.sources import partnet_refs, procedural_refs

ROOT = Path(__file__).resolve().parents[1]
PARTNET = Path(os.environ.get("BROKENCHAIRS_PARTNET", ROOT.parent / "shared" / "data" / "partnet-chairs"))


def run_once(args, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    mats = out / "materials"
    list(synth_library(40, args.seed, mats, 512))
    cfg = GenerateConfig(anomalies=KINDS, views_per_variant=args.views, resolution=args.resolution,
                         samples=args.samples, seed=args.seed, shard_size=8, twins=args.twins,
                         materials=str(mats.resolve()))
    cores = min(os.cpu_count() or 1, args.workers * max(1, (os.cpu_count() or 1) // args.workers))
    t0 = time.perf_counter()
    refs = partnet_refs(PARTNET)[: args.real] if args.real else procedural_refs(args.shapes, args.seed)
    stats = generate(out, refs, cfg, workers=args.workers, pin=args.pin)
    wall = time.perf_counter() - t0
    kept = sum(stats.kept.values())
    views = args.views or "Table-1"
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    chairs = f"{len(refs)} real PartNet" if args.real else f"{args.shapes} procedural"
    print(f"generate: {chairs} chairs x {len(KINDS)} types x {views} views, "
          f"{args.resolution}x{args.resolution}, ground pass + object pass at {args.samples} spp + OIDN, "
          f"{args.workers} workers on {cores} cores ({'each bound to its own' if args.pin else 'not pinned'}), "
          f"twins {'on' if args.twins else 'off'}")
    print(f"renders              {stats.images_rendered} full quality + {stats.mask_renders} masks-only  "
          f"({stats.images_rendered / wall:.2f} full renders/s)")
    print(f"kept queries         {kept}  ({kept / wall:.2f} kept/s)  {dict(sorted(stats.kept.items()))}")
    print(f"CPU-s per kept image {wall * cores / kept:.3f} (wall x cores)   CPU-s per full render {wall * cores / stats.images_rendered:.3f}")
    print(f"  inside the workers {stats.worker_seconds * threads / kept:.3f} per kept image (without worker start-up and "
          f"the idle tail of a run this small: what a long run converges to)")
    print(f"time in render call  {stats.render_seconds / stats.worker_seconds:.0%} of worker time")
    print(f"wall                 {wall:.1f} s")
    print(f"rejections           {dict(sorted(stats.rejections.items()))}")
    for kind in KINDS:
        if kind == "normal":
            continue
        print(f"  kept {kind:<9} {stats.kept.get(kind, 0)}")
    print(f"dataset: {out}", flush=True)
    return {"per_kept": wall * cores / kept, "inside": stats.worker_seconds * threads / kept,
            "share": stats.render_seconds / stats.worker_seconds}


# Issue 10's target was set on a host where the best flag-only render (perf/bench_render.py's
# "flag-only") cost 1.13 CPU-s: 0.5 CPU-s per kept query is 0.44 of that render, a figure the
# host's drift does not move.
TARGET_CPU_S, ISSUE_FLAG_ONLY_CPU_S = 0.5, 1.13


def calibration(samples: int) -> dict[str, float]:
    """CPU-s of one production render and of one flag-only render (single pass, 4 spp, Cycles'
    OIDN FAST) of a fixed scene (procedural chair 0) alone on one core (perf/bench_render.py): the
    host's speed now, to divide pipeline figures of different hours by."""
    res = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_render.py")), "--procedural", "1",
                          "--real", "0", "--repeats", "3", "--samples", str(samples)],
                         capture_output=True, text=True, check=True)
    rows = {x.split()[0]: float(x.split()[1]) for x in res.stdout.splitlines()
            if x.startswith((f"production@{samples} ", "flag-only "))}
    return {"production": rows[f"production@{samples}"], "flag-only": rows["flag-only"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", type=int, default=6)
    ap.add_argument("--real", type=int, default=0, help="run on the first N real PartNet chairs instead (--shapes is then unused)")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--samples", type=int, default=OBJECT_SAMPLES)
    ap.add_argument("--views", type=int, default=0, help="fixed views per variant (default: Table 1 law)")
    ap.add_argument("--twins", action="store_true")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="leave the workers to the scheduler")
    ap.add_argument("--repeats", type=int, default=1, help="runs (fresh folders); medians printed at the end")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibrate", action="store_true",
                    help="also time one render of a fixed scene alone on one core before and after, and print "
                         "the pipeline's cost in those units (comparable across hours of a drifting host)")
    ap.add_argument("--out", type=Path, default=None, help="keep the dataset here (default: a temp folder)")
    args = ap.parse_args()
    before = calibration(args.samples) if args.calibrate else None
    runs = []
    for i in range(args.repeats):
        out = args.out or Path(tempfile.mkdtemp(prefix="bench-generate-"))
        runs.append(run_once(args, out if args.repeats == 1 else out / f"run{i}"))
    if args.repeats > 1:
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"\nover {args.repeats} runs: CPU-s per kept query " + ", ".join(f"{r['per_kept']:.2f}" for r in runs)
              + f" -> median {med['per_kept']:.2f}; inside the workers median {med['inside']:.2f}; "
              f"in render call {med['share']:.0%}")
    if before is not None:
        after = calibration(args.samples)
        per_kept = statistics.median(r["per_kept"] for r in runs)
        inside = statistics.median(r["inside"] for r in runs)
        unit = {k: statistics.mean([before[k], after[k]]) for k in before}
        print(f"calibration, procedural chair 0 alone on one core, before / after: production render "
              f"{before['production']:.3f} / {after['production']:.3f} CPU-s, flag-only render "
              f"{before['flag-only']:.3f} / {after['flag-only']:.3f}")
        print(f"CPU-s per kept query = {per_kept / unit['production']:.2f} x the production render, "
              f"{per_kept / unit['flag-only']:.3f} x the flag-only render ({inside / unit['flag-only']:.3f} inside the "
              f"workers); issue 10's target: {TARGET_CPU_S / ISSUE_FLAG_ONLY_CPU_S:.3f} x (0.5 CPU-s where flag-only "
              f"took {ISSUE_FLAG_ONLY_CPU_S}) -> at that host speed {per_kept / unit['flag-only'] * ISSUE_FLAG_ONLY_CPU_S:.2f} "
              f"CPU-s per kept query ({inside / unit['flag-only'] * ISSUE_FLAG_ONLY_CPU_S:.2f} inside the workers)")

if __name__ == "__main__":
    main()
