"""Planning (pure, deterministic): config + shapes -> splits, work units, shards, estimates.

- Splits are by shape (``splits.py``): every query of a shape lands in its shape's split.
- A work unit is one variant: (shape, anomaly type) or the shape's normal unit. Its seed comes
  from the dataset seed and its stable id, so the same config gives the same unit anywhere.
- Which anomaly types a shape gets follows the paper's Table 1 (``balance="table1"``, default):
  each type on its share of the shapes (``data_manifests/table1.json``: 64-79% of 8,143 per
  type), drawn per (shape, type) from the unit's seed; every shape has its normal
  unit. ``balance="every-shape"`` gives every asked type to every shape.
- Views per unit follow the paper's Table 1 unless a fixed count is asked for: anomaly variants
  draw from 1..8 with median 4, normal shapes from 1..12 with median 8 (a rounded normal law,
  clipped). These are the views *rendered*; QC and visibility may keep fewer.
- Units are packed in plan order into shards of about ``shard_size`` queries (expected count:
  views per unit, twice that for anomalies when normal twins are kept), one unit per shard at least.
- ``task_share`` gives job-array member i of K its shards (every K-th), no coordinator needed.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brokenchairs.data_manifests import load_json
from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.sources import ShapeRef
from brokenchairs.generation.units.tasks import QueryTask, Unit
from brokenchairs.dataset.splits import PAPER_RATIOS, assign_splits

TABLE1 = load_json("table1.json")
# Table 1 of the paper: views rendered per anomaly variant [1, 8], median 4; per normal shape [1, 12], median 8;
# the spread (sd) is ours: a rounded normal law, clipped to the range.
VIEW_LAWS = {kind: (float(TABLE1[kind]["views"][2]), sd, TABLE1[kind]["views"][0], TABLE1[kind]["views"][1])
             for kind, sd in (("anomaly", 1.6), ("normal", 2.4))}  # (mean, sd, min, max)
TYPE_SHARES = {kind: TABLE1["types"][kind]["shapes"] / TABLE1["shapes"] for kind in ANOMALY_TYPES}
BALANCES = ("table1", "every-shape")
# CPU-seconds per 256x256 query render on this machine kind, in the pipeline (perf/bench_generate.py
# --shapes 12 at 11 and 12 spp, 2 workers, each bound to its core): the ground pass and fixed costs,
# plus the object pass per sample; a masks-only render; per variant set-up (shape, anomaly, scene,
# shard writes). Scaled by pixels. Fit: 0.48 / 0.45 CPU-s per kept query at 12 / 11 spp (fitted when 11
# was the default; the default is now 8, ``render_settings.OBJECT_SAMPLES``, priced on the same line).
RENDER_CPU_S_256 = (0.12, 0.025)  # (fixed, per spp)
MASKS_ONLY_CPU_S_256 = 0.02
SETUP_CPU_S_PER_VARIANT = 0.05
VIEW_SHAPE_CPU_SECONDS_256 = 2.2


def unit_seed(seed: int, unit_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{unit_id}".encode()).digest()[:8], "little")


def draw_views(kind: str, seed: int) -> int:
    mean, sd, lo, hi = VIEW_LAWS["normal" if kind == "normal" else "anomaly"]
    rng = np.random.default_rng([seed, 17])  # its own stream: the unit's rendering stream is untouched
    return int(np.clip(np.rint(rng.normal(mean, sd)), lo, hi))


def has_type(kind: str, seed: int, balance: str) -> bool:
    """Does this (shape, type) unit exist? Table 1's share of shapes per type, from its own stream."""
    if kind == "normal" or balance == "every-shape":
        return True
    return bool(np.random.default_rng([seed, 23]).random() < TYPE_SHARES[kind])


def plan_units(refs: list[ShapeRef], kinds: tuple[str, ...], seed: int, views_per_variant: int = 0,
               balance: str = "table1") -> list[Unit]:
    if balance not in BALANCES:
        raise ValueError(f"unknown balance {balance!r}; known: {', '.join(BALANCES)}")
    units = []
    for r in refs:
        for k in kinds:
            uid = f"{r.shape_id}/{k}"
            s = unit_seed(seed, uid)
            if has_type(k, s, balance):
                units.append(Unit(uid, r, k, s, views_per_variant or draw_views(k, s)))
    return units


def expected_queries(unit: Unit, twins: bool) -> int:
    return unit.views * (2 if twins and unit.kind != "normal" else 1)


def plan_tasks(out: Path, units: list[Unit], shard_size: int, twins: bool = False) -> list[QueryTask]:
    tasks, current, size = [], [], 0
    for u in units:
        current.append(u)
        size += expected_queries(u, twins)
        if size >= shard_size:
            tasks.append(current)
            current, size = [], 0
    if current:
        tasks.append(current)
    return [QueryTask(str(Path(out) / "shards" / f"queries-{k:05d}.h5"), tuple(t)) for k, t in enumerate(tasks)]


def task_share(tasks: list, num_shards: int = 1, shard_index: int = 0) -> list:
    """Job-array member ``shard_index`` of ``num_shards``: every num_shards-th task."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index must be in 0..{num_shards - 1}, got {shard_index}")
    return tasks[shard_index::num_shards]


def check_share(num_shards: int, shard_index: int) -> None:
    """InputError unless member ``shard_index`` of ``num_shards`` exists (checked before anything is written)."""
    try:
        task_share([], num_shards, shard_index)
    except ValueError as exc:
        raise InputError(None, str(exc)) from exc


def render_seconds(resolution: int, samples: int, masks_only: bool = False) -> float:
    pixels = (resolution / 256) ** 2
    if masks_only:
        return MASKS_ONLY_CPU_S_256 * pixels
    fixed, per_sample = RENDER_CPU_S_256
    return (fixed + per_sample * samples) * pixels


@dataclass
class PlanSummary:
    shapes: int
    splits: dict[str, int]
    units: Counter
    views: dict[str, list[int]]
    expected_queries: int
    renders: int  # full-quality renders, at most (QC runs first, on masks-only renders)
    mask_renders: int
    shards: int
    cpu_seconds: float

    def lines(self, workers: int) -> list[str]:
        out = [f"shapes: {self.shapes} (train {self.splits['train']}, val {self.splits['val']}, test {self.splits['test']})"]
        order = [*TABLE1["types"], "normal"]
        for kind, views in sorted(self.views.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
            paper = TABLE1["types"].get(kind)
            share = (f"  on {100 * self.units[kind] / max(self.shapes, 1):.1f}% of shapes (Table 1: "
                     f"{100 * TYPE_SHARES[kind]:.1f}%)") if paper else ""
            out.append(f"  {kind:9s} units {self.units[kind]:6d}  views/unit [min {min(views)}, max {max(views)}, "
                       f"median {statistics.median(views):g}]{share}")
        planned = {k: sum(v) for k, v in self.views.items()}
        anomalous = sum(v for k, v in planned.items() if k != "normal")
        if planned:
            paper = TABLE1["anomaly"]["images"] / TABLE1["images_total_approx"]
            out.append(f"anomalous share of planned views: {100 * anomalous / max(sum(planned.values()), 1):.1f}% "
                       f"(paper: {100 * paper:.0f}%; QC keeps fewer anomalous views, see stats)")
        hours = self.cpu_seconds / 3600
        out.append(f"expected queries <= {self.expected_queries} in {self.shards} shards; at most {self.renders} full-quality renders "
                   f"+ {self.mask_renders} masks-only renders for quality control")
        out.append(f"estimate: {hours:.2f} CPU-hours = {self.cpu_seconds / max(workers, 1) / 60:.1f} min wall "
                   f"on {workers} cores (CPU; measured rates, before QC rejections)")
        return out


def summarize(refs: list[ShapeRef], units: list[Unit], tasks: list[QueryTask], resolution: int, samples: int,
              twins: bool, views_per_shape: int = 0, split_ratios=None, split_seed: int = 0) -> PlanSummary:
    parts = assign_splits([r.shape_id for r in refs], split_ratios or PAPER_RATIOS, split_seed)
    views: dict[str, list[int]] = {}
    for u in units:
        views.setdefault(u.kind, []).append(u.views)
    # an anomaly's QC runs on masks-only renders of its normal and anomalous views; full-quality
    # renders only for kept views: one per view (normal unit or anomaly), two for an anomaly with twins
    masks = sum(2 * u.views for u in units if u.kind != "normal")
    renders = sum(u.views * (2 if twins and u.kind != "normal" else 1) for u in units)
    cpu = renders * render_seconds(resolution, samples) + masks * render_seconds(resolution, samples, masks_only=True)
    cpu += sum(1 if u.kind == "normal" else 2 for u in units) * SETUP_CPU_S_PER_VARIANT
    cpu += len(refs) * (VIEW_SHAPE_CPU_SECONDS_256 * (resolution / 256) ** 2 * views_per_shape / 20 if views_per_shape else 0)
    return PlanSummary(len(refs), {k: len(v) for k, v in parts.items()}, Counter(u.kind for u in units), views,
                       sum(expected_queries(u, twins) for u in units), renders, masks, len(tasks), cpu)
