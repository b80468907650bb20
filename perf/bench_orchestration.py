"""Orchestration figures: 2 workers vs 1 (speed-up), shard-write share, Table 1 of the result.

Usage: python perf/bench_orchestration.py [--shapes 10] [--resolution 128] [--out DIR]
Generates the same dataset (procedural chairs, all types, Table 1 view law, default shard size)
once with 1 worker and once with 2, checks both give identical manifests, and prints throughput,
the speed-up, the share of worker time spent writing shards, and `brokenchairs stats` of it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brokenchairs.generation.pipeline.generate import GenerateConfig, generate
from brokenchairs.generation.render.materials.library import synth_library
from brokenchairs.generation.shapes.sources import procedural_refs


def run(out: Path, shapes: int, resolution: int, workers: int, mats: Path):
    cfg = GenerateConfig(resolution=resolution, seed=0, materials=str(mats.resolve()))
    t0 = time.perf_counter()
    stats = generate(out, procedural_refs(shapes, 0), cfg, workers=workers)
    return stats, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", type=int, default=10)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--out", type=Path, default=None, help="keep the 2-worker dataset here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    mats = tmp / "materials"
    list(synth_library(40, 0, mats, max(128, 2 * args.resolution)))
    results = {}
    for workers in (1, 2):
        out = tmp / f"w{workers}"
        stats, wall = run(out, args.shapes, args.resolution, workers, mats)
        kept = sum(stats.kept.values())
        results[workers] = wall
        print(f"{workers} worker(s): {kept} queries from {stats.images_rendered} renders in {wall:.1f} s = "
              f"{kept / wall:.2f} queries/s, {stats.images_rendered / wall:.2f} renders/s; shard writes "
              f"{stats.write_seconds:.2f} s = {stats.write_seconds / stats.worker_seconds:.1%} of worker time, "
              f"render call {stats.render_seconds / stats.worker_seconds:.0%}")
    same = (tmp / "w1" / "manifest.jsonl").read_text() == (tmp / "w2" / "manifest.jsonl").read_text()
    print(f"speed-up 2 workers vs 1: {results[1] / results[2]:.2f}x; identical manifests: {same}")
    print(subprocess.run([sys.executable, "-m", "brokenchairs", "stats", str(tmp / "w2")], capture_output=True,
                         text=True, check=True).stdout)
    if args.out:
        shutil.rmtree(args.out, ignore_errors=True)
        shutil.move(tmp / "w2", args.out)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
