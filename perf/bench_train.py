"""Loader and training throughput on a real dataset folder.

Usage: python perf/bench_train.py [--data DIR] [--preset paper|cpu] [--device cpu|cuda] [--repeats 3] [--steps 6]
                                 [--precision]
Without --data it generates 3 procedural chairs at 256x256 (+ 20 views) under out/bench-train.

Prints, as medians of --repeats runs:
- loader samples/s for one DataLoader worker process (N = 10 training views, augmentation on,
  depth for VLFA, shape-grouped sampler) with the view cache and without it, plus the hit rate;
- training samples/s (forward + backward + Adam step, the preset's batch and views) for
  `resnet18-fpn`, `cmt` with every sample drawing its own views (``shapes_per_batch=0``, the paper's
  sampling) and `cmt` with the queries of 2 shapes per batch sharing their views (encoded once),
  data loading included, the peak resident memory of each run, and the sharing speed-up measured
  as a ratio within each repetition (the three run interleaved).
With ``--precision`` the training setups are instead `resnet18-fpn` and `cmt` (2 shapes per
batch), each with ``amp`` off (float32) and on (bf16 autocast where ``benchmark.device.compute_dtype``
allows it: CUDA, or a CPU with AMX), and the speed-up of amp is printed per model as a ratio
within each repetition.
Each training measurement runs in its own process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def ensure_data(path: Path | None) -> Path:
    if path is not None:
        return path
    out = Path("out/bench-train")
    if not (out / "dataset.json").is_file() or not list((out / "shards").glob("views-*.h5")):
        exe = [sys.executable, "-m", "brokenchairs"]
        subprocess.run(exe + ["generate", "--num-shapes", "3", "--resolution", "256", "--out", str(out)], check=True)
        subprocess.run(exe + ["render-views", "--out", str(out), "--resolution", "256"], check=True)
    return out


def loader_rate(data: Path, cached: bool, samples: int) -> dict:
    from torch.utils.data import DataLoader

    from brokenchairs.dataset.index import DatasetIndex

    from brokenchairs.benchmark.data import EpochSampler, ShardDataset

    index = DatasetIndex.open(data, "all")
    ds = ShardDataset(index, views=10, train=True, augment=True, with_depth=True, cache_shapes=32 if cached else 0)
    sampler = EpochSampler(index, seed=0, batch_size=8, group_shapes=8)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=0)
    for _ in zip(range(2), loader):  # warm-up: lazy imports, file handles, page cache
        pass
    ds.cache_hits = ds.cache_misses = 0
    n, t0 = 0, time.perf_counter()
    while n < samples:
        for batch in loader:
            n += len(batch["label"])
            if n >= samples:
                break
    dt = time.perf_counter() - t0
    return {"samples_per_s": n / dt, "hit_rate": ds.cache_hits / max(1, ds.cache_hits + ds.cache_misses)}


def train_once(data: str, model: str, device: str, steps: int, preset: str, sets: dict) -> dict:
    import torch

    from brokenchairs.benchmark.config import resolve_config
    from brokenchairs.benchmark.train import train

    cfg = resolve_config(model, preset, overrides={"split": "all", "val_split": "", "workers": 1,
                                                   "max_steps_per_epoch": steps, "epochs": 1, "log_every": 1, **sets})
    import tempfile

    with tempfile.TemporaryDirectory() as run:
        t0 = time.perf_counter()
        res = train(cfg, Path(data), Path(run) / "r", device=device, progress=False)
        dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    # the first step pays for start-up (workers, first reads): report steady-state steps
    return {"samples_per_s": res.samples / dt, "steps": res.steps, "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--loader-samples", type=int, default=160)
    ap.add_argument("--precision", action="store_true", help="time amp (bf16 where supported) against float32")
    ap.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        data, model, steps, sets = args._child
        print(json.dumps(train_once(data, model, args.device, int(steps), args.preset, json.loads(sets))))
        return
    data = ensure_data(args.data)
    from brokenchairs.dataset.index import DatasetIndex

    index = DatasetIndex.open(data, "all")
    print(f"data: {data} ({len(index)} queries, {len(index.shapes())} shapes, {index.resolution}px, "
          f"{index.num_views} views/shape)")
    for cached in (True, False):
        runs = [loader_rate(data, cached, args.loader_samples) for _ in range(args.repeats)]
        name = "view cache of 32 shapes" if cached else "no view cache (every sample reads its views)"
        print(f"loader, 1 process, N=10, {name}: {statistics.median(r['samples_per_s'] for r in runs):.1f} samples/s "
              f"(view-cache hit rate {statistics.median(r['hit_rate'] for r in runs):.0%})")
    from brokenchairs.benchmark.config import resolve_config

    cfg = resolve_config("cmt", args.preset)
    from brokenchairs.benchmark.device import compute_dtype

    if args.precision:
        amp_on = compute_dtype(args.device, True)
        setups = {f"{m}, {p}": (m, {"shapes_per_batch": 2, "amp": p != "fp32"})
                  for m in ("resnet18-fpn", "cmt") for p in ("fp32", amp_on)}
    else:
        setups = {"resnet18-fpn": ("resnet18-fpn", {}), "cmt, own views per sample": ("cmt", {"shapes_per_batch": 0}),
                  "cmt, 2 shapes per batch share views": ("cmt", {"shapes_per_batch": 2})}
    runs: dict[str, list] = {k: [] for k in setups}
    for _ in range(args.repeats):  # interleaved: the host's drift moves every setup alike
        for name, (model, sets) in setups.items():
            out = subprocess.run([sys.executable, __file__, "--device", args.device, "--preset", args.preset, "--_child",
                                  str(data), model, str(args.steps), json.dumps(sets)], capture_output=True, text=True,
                                 check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"train on {args.device}, preset {args.preset} (batch {cfg.batch_size}, N = {cfg.views_train}), "
          f"{args.steps} steps incl. loading, medians of {args.repeats}:")
    for name, rs in runs.items():
        print(f"  {name:38s} {statistics.median(r['samples_per_s'] for r in rs):6.2f} samples/s, "
              f"peak memory {max(r['peak_mib'] for r in rs):.0f} MiB")
    pairs = ([(f"{m}, {amp_on}", f"{m}, fp32") for m in ("resnet18-fpn", "cmt")] if args.precision else
             [("cmt, 2 shapes per batch share views", "cmt, own views per sample")])
    for fast, slow in pairs:
        ratios = [b["samples_per_s"] / a["samples_per_s"] for a, b in zip(runs[slow], runs[fast])]
        print(f"  {fast}: {statistics.median(ratios):.2f}x the samples/s of {slow} (per-repetition ratios "
              + ", ".join(f"{r:.2f}" for r in ratios) + ")")


if __name__ == "__main__":
    main()
