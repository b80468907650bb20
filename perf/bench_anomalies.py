"""Anomaly engine figures: success rate per type and per label, median time, broken's repair path.

Usage: python perf/bench_anomalies.py [--chairs 100] [--seed 0]
Runs every type on N procedural chairs and on the real PartNet chairs (donor pool: both sets).
"Tried" counts draws (attempts); a request fails after max_attempts imperceptible draws.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.generation.anomalies import AnomalyFailed, DonorPool, make_anomaly
from brokenchairs.generation.shapes.sources import load_ref, partnet_refs, procedural_refs

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chairs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--partnet", type=Path, default=ROOT.parent / "shared" / "data" / "partnet-chairs")
    args = ap.parse_args()
    sets = {"procedural": procedural_refs(args.chairs, args.seed)}
    if args.partnet.is_dir():
        sets["partnet"] = partnet_refs(args.partnet)
    pool = DonorPool([r for refs in sets.values() for r in refs])
    for name, refs in sets.items():
        shapes = [load_ref(r) for r in refs]
        print(f"\n== {name}: {len(shapes)} chairs")
        print(f"{'type':<10}{'requests ok':>12}{'draws kept':>12}{'median ms':>11}  rejections / methods")
        per_label: dict[str, Counter] = defaultdict(Counter)
        for kind in ANOMALY_TYPES:
            ok = draws = 0
            times, rejections, methods = [], Counter(), Counter()
            for i, s in enumerate(shapes):
                t0 = time.perf_counter()
                try:
                    _, rec = make_anomaly(s, kind, np.random.default_rng([args.seed, i]), pool=pool)
                except AnomalyFailed as exc:
                    draws += sum(exc.rejections.values())
                    rejections.update(exc.rejections or {exc.reason: 1})
                    continue
                times.append(time.perf_counter() - t0)
                ok += 1
                draws += rec.attempts
                rejections.update(rec.rejections)
                methods[rec.metrics.get("method", "-")] += 1
                label = rec.part_path.rsplit("/", 1)[1]
                per_label[label][kind] += 1
            med = 1000 * statistics.median(times) if times else float("nan")
            extra = dict(rejections)
            if kind == "broken":
                extra = {**extra, **{f"method:{k}": v for k, v in methods.items()}}
            print(f"{kind:<10}{ok:>7}/{len(shapes):<4}{ok:>7}/{draws:<4}{med:>11.1f}  {extra}")
        print("accepted anomalies per label:")
        for label, c in sorted(per_label.items(), key=lambda kv: -sum(kv[1].values())):
            print(f"  {label:<30}" + "  ".join(f"{k}={c[k]}" for k in ANOMALY_TYPES if c[k]))


if __name__ == "__main__":
    main()
