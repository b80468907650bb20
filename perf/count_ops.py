"""Operator count of one training step: a CPU-measurable stand-in for GPU launch and synchronisation cost.

Usage: python perf/count_ops.py [--data DIR] [--preset cpu] [--models cmt,resnet18-fpn] [--steps 3]
Without --data it generates 3 procedural chairs (as perf/bench_train.py does).

On a GPU each top-level ATen operator is at least one kernel launch (about 5-20 us of host time), and some
operators make the host wait for the device: ``item`` / ``_local_scalar_dense`` (a Python number from a tensor,
also behind indexing by a 0-d tensor) and ``nonzero`` (boolean indexing). A small model whose step runs thousands
of them is bound by the host whatever the GPU. This script trains ``--steps`` steps of each model on the CPU under
torch.profiler, with data loading in a worker process (so only the training step is counted), and prints per step:
top-level operators, ``item`` and ``nonzero`` calls, and the five most frequent operators. The counts are exact and
deterministic: compare them across commits, no timing noise.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import ensure_data  # noqa: E402

from brokenchairs.benchmark.config import resolve_config  # noqa: E402
from brokenchairs.benchmark.train import train  # noqa: E402


def _top_level(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True


def count(model: str, data: Path, preset: str, steps: int) -> dict:
    cfg = resolve_config(model, preset, overrides={"split": "train", "val_split": "", "epochs": 1, "workers": 1,
                                                   "max_steps_per_epoch": steps, "checkpoint_every": 0})
    with tempfile.TemporaryDirectory() as run, profile(activities=[ProfilerActivity.CPU]) as prof:
        train(cfg, data, Path(run) / model, device="cpu", progress=False)
    ops = [e.name for e in prof.events() if e.name.startswith("aten::") and _top_level(e)]
    names = collections.Counter(ops)
    return {"ops": len(ops) / steps, "item": (names["aten::item"] + names["aten::_local_scalar_dense"]) / steps,
            "nonzero": (names["aten::nonzero"] + names["aten::nonzero_numpy"]) / steps, "top": names.most_common(5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--models", default="cmt,resnet18-fpn")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    data = ensure_data(args.data)
    print(f"data: {data}, preset {args.preset}, {args.steps} steps, per training step:")
    for model in args.models.split(","):
        c = count(model, data, args.preset, args.steps)
        top = ", ".join(f"{name[6:]} {n / args.steps:.0f}" for name, n in c["top"])
        print(f"  {model:14s} {c['ops']:7.0f} top-level ops, {c['item']:5.0f} item, {c['nonzero']:4.0f} nonzero  ({top})")


if __name__ == "__main__":
    main()
