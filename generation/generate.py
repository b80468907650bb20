"""Plan and run query generation (``brokenchairs generate``).

Plan (pure): shapes x anomaly types -> work units (one variant each, seeded from the dataset
seed and the unit's stable id) -> shards of ``units_per_shard`` units. Execute: warm Blender
workers render whole shards (``blender_scripts/query_worker.py``); a shard is complete or absent,
so a re-run skips complete shards. At the end ``manifest.jsonl`` is rebuilt from the shards in
plan order and ``dataset.json`` gets counts and rejection reasons.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from brokenchairs.errors import InputError
from brokenchairs.generation.anomalies import ANOMALY_TYPES
from brokenchairs.generation.cameras import DEFAULT_FOV_DEG
from brokenchairs.generation.dataset import claim_section, read_dataset, write_dataset
from brokenchairs.generation.executor import run_tasks
from brokenchairs.generation.shards import is_complete, read_manifest_lines
from brokenchairs.generation.sources import ShapeRef

KINDS = ANOMALY_TYPES + ("normal",)
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class GenerateConfig:
    anomalies: tuple[str, ...] = KINDS
    views_per_variant: int = 4
    resolution: int = 256
    samples: int = 4
    denoise: bool = True
    fov_deg: float = DEFAULT_FOV_DEG
    seed: int = 0
    units_per_shard: int = 4
    materials: str = ""  # library folder (absolute)

    def validate(self) -> None:
        unknown = [a for a in self.anomalies if a not in KINDS]
        if unknown:
            raise InputError(None, f"unknown anomaly type {unknown[0]!r}; use {', '.join(KINDS)} or all")
        if self.resolution % 8:
            raise InputError(None, f"--resolution {self.resolution} is not divisible by 8 (the encoder stride)")
        if not 1 <= self.views_per_variant <= 20:
            raise InputError(None, f"--views-per-variant must be in 1..20 (azimuth grid), got {self.views_per_variant}")


@dataclass(frozen=True)
class Unit:
    unit_id: str
    shape: ShapeRef
    kind: str
    seed: int


@dataclass(frozen=True)
class QueryTask:
    shard: str
    units: tuple[Unit, ...]


@dataclass
class GenerateStats:
    units: int = 0
    shards_total: int = 0
    shards_skipped: int = 0
    kept: Counter = field(default_factory=Counter)
    rejections: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    render_seconds: float = 0.0
    worker_seconds: float = 0.0
    images_rendered: int = 0


def unit_seed(seed: int, unit_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{unit_id}".encode()).digest()[:8], "little")


def plan_units(refs: list[ShapeRef], cfg: GenerateConfig) -> list[Unit]:
    return [Unit(f"{r.shape_id}/{k}", r, k, unit_seed(cfg.seed, f"{r.shape_id}/{k}")) for r in refs for k in cfg.anomalies]


def plan_tasks(out: Path, units: list[Unit], per_shard: int) -> list[QueryTask]:
    return [QueryTask(str(Path(out) / "shards" / f"queries-{k // per_shard:05d}.h5"), tuple(units[k:k + per_shard]))
            for k in range(0, len(units), per_shard)]


def generate(out: Path, refs: list[ShapeRef], cfg: GenerateConfig, workers: int = 1, device: str = "cpu",
             on_shard: Callable[[dict], None] | None = None) -> GenerateStats:
    cfg.validate()
    if not refs:
        raise InputError(out, "no shapes to generate from")
    out = Path(out)
    data = claim_section(out, "queries", asdict(cfg))
    recorded = data.get("shapes")
    if recorded and [r["shape_id"] for r in recorded] != [r.shape_id for r in refs]:
        raise InputError(out / "dataset.json", "folder holds a dataset of other shapes; use a new --out")
    data["shapes"] = [r.to_json() for r in refs]
    units = plan_units(refs, cfg)
    tasks = plan_tasks(out, units, cfg.units_per_shard)
    data["queries"]["shards"] = [Path(t.shard).name for t in tasks]
    write_dataset(out, data)
    todo = [t for t in tasks if not is_complete(Path(t.shard))]
    stats = GenerateStats(units=len(units), shards_total=len(tasks), shards_skipped=len(tasks) - len(todo))
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    t0 = time.perf_counter()
    for res in run_tasks("brokenchairs.blender_scripts.query_worker:run", todo, workers,
                         "brokenchairs.blender_scripts.query_worker:init",
                         (asdict(cfg), [r.to_json() for r in refs], device, threads)):
        stats.kept.update(res["kept"])
        stats.rejections.update(res["rejections"])
        stats.render_seconds += res["render_seconds"]
        stats.worker_seconds += res["seconds"]
        stats.images_rendered += res["images_rendered"]
        if on_shard:
            on_shard(res)
    stats.seconds = time.perf_counter() - t0
    finish(out, tasks)
    return stats


def finish(out: Path, tasks: list[QueryTask]) -> None:
    """Rebuild manifest.jsonl (plan order) and the counts in dataset.json from complete shards."""
    lines, counts = [], Counter()
    for t in tasks:
        if not is_complete(Path(t.shard)):
            return  # another run (or array job) still owes shards: leave the manifest for it
        for line in read_manifest_lines(Path(t.shard)):
            lines.append(line)
            counts[json.loads(line)["anomaly_type"]] += 1
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text("".join(f"{line}\n" for line in lines))
    os.replace(tmp, out / MANIFEST)
    data = read_dataset(out) or {}
    data["queries"]["counts"] = dict(sorted(counts.items()))
    data["queries"]["complete"] = True
    write_dataset(out, data)
