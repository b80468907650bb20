"""Plan and run query generation (``brokenchairs generate``).

Plan (pure, ``plan.py``): shapes x anomaly types -> work units (one variant each, seeded from the
dataset seed and the unit's stable id; views per unit from the paper's Table 1 law) -> shards of
about ``shard_size`` queries; shapes -> train/val/test by shape. Execute: warm Blender workers
render whole shards (``blender_scripts/query_worker.py``) on a local pool or Ray; a job-array
member runs only its share. A shard is complete or absent, so a re-run skips complete shards and
redoes the rest. When every shard is complete, ``manifest.jsonl`` is rebuilt from the shards in
plan order and ``dataset.json`` gets the counts.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.errors import InputError, check_bool, check_int, check_number
from brokenchairs.dataset.cameras import DEFAULT_FOV_DEG
from brokenchairs.dataset.dataset_json import claim_section, dataset_lock, read_dataset, update_dataset, write_dataset
from brokenchairs.generation.pipeline.executor import run_tasks
from brokenchairs.generation.pipeline.plan import BALANCES, check_share, plan_tasks, plan_units, task_share
from brokenchairs.generation.units.tasks import QuerySettings, QueryTask, Unit
from brokenchairs.generation.render.render_settings import OBJECT_SAMPLES as DEFAULT_SAMPLES
from brokenchairs.dataset.shards import is_complete, read_manifest_lines, remove_stale_tmp
from brokenchairs.generation.shapes.sources import ShapeRef
from brokenchairs.dataset.splits import PAPER_RATIOS, assign_splits, check_ratios
from brokenchairs.shared_folder import write_atomic

KINDS = ANOMALY_TYPES + ("normal",)
MIN_RESOLUTION = 16  # the ground pass renders at 1/4 of it, and at 8 px its border no longer fits
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class GenerateConfig:
    anomalies: tuple[str, ...] = KINDS
    views_per_variant: int = 0  # 0 = the paper's Table 1 law (plan.VIEW_LAWS)
    resolution: int = 256
    samples: int = DEFAULT_SAMPLES  # per pixel of the object pass (the ground pass has its own, GROUND_SAMPLES)
    denoise: bool = True
    fov_deg: float = DEFAULT_FOV_DEG
    seed: int = 0
    shard_size: int = 64  # queries per shard (expected)
    twins: bool = False  # also keep the normal twin of every anomalous view (same camera, materials, light)
    split_ratios: tuple[float, float, float] = PAPER_RATIOS
    materials: str = ""  # library folder: absolute, or relative to the dataset folder (the default "materials")
    balance: str = "table1"  # which types each shape gets: Table 1's shares, or every type on every shape
    min_anomaly_pixels: int = 0  # > 0: an anomaly must cover this many pixels at the rendered resolution

    def __post_init__(self) -> None:
        """"all" among the anomalies means every kind; repeats count once (a config may say either)."""
        if not isinstance(self.anomalies, (tuple, list)):
            return  # validate() names the problem
        kinds = KINDS if "all" in self.anomalies else tuple(dict.fromkeys(self.anomalies))
        object.__setattr__(self, "anomalies", kinds)

    def settings(self, out: Path) -> QuerySettings:
        """What a worker renders with; a relative ``materials`` folder lies inside the dataset folder ``out``."""
        return QuerySettings(resolution=self.resolution, samples=self.samples, denoise=self.denoise, fov_deg=self.fov_deg,
                             twins=self.twins, min_anomaly_pixels=self.min_anomaly_pixels,
                             materials=str((Path(out) / self.materials).resolve()))

    def validate(self) -> None:
        """Every field, with one line naming its option (a --config file bypasses click's checks)."""
        if not self.anomalies:
            raise InputError(None, f"--anomaly: give at least one of {', '.join(KINDS)} or all")
        unknown = [a for a in self.anomalies if a not in KINDS]
        if unknown:
            raise InputError(None, f"unknown anomaly type {unknown[0]!r}; use {', '.join(KINDS)} or all")
        check_int("--resolution", self.resolution, MIN_RESOLUTION, 4096)  # the ground pass renders at 1/4
        if self.resolution % 8:
            raise InputError(None, f"--resolution {self.resolution} is not divisible by 8 (the encoder stride)")
        if self.views_per_variant != 0:  # 0: the Table 1 law
            check_int("--views-per-variant", self.views_per_variant, 1, 20)  # the azimuth grid
        check_int("--samples", self.samples, 1, 65536)
        check_int("--seed", self.seed, 0)
        check_int("--shard-size", self.shard_size, 1)
        check_bool("--twins", self.twins)
        check_bool("denoise", self.denoise)
        check_number("fov_deg", self.fov_deg, 0, 180, exclusive=True)
        if not isinstance(self.materials, str):
            raise InputError(None, f"--materials expects a folder, got {self.materials!r}")
        if self.balance not in BALANCES:
            raise InputError(None, f"--balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")
        check_int("--min-anomaly-pixels", self.min_anomaly_pixels, 0)
        try:
            check_ratios(tuple(self.split_ratios))
        except (ValueError, TypeError) as exc:
            raise InputError(None, f"--split-ratios: {exc}") from exc


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
    write_seconds: float = 0.0
    images_rendered: int = 0  # full-quality renders
    mask_renders: int = 0  # 1-spp masks-only renders that quality control runs on


def plan(out: Path, refs: list[ShapeRef], cfg: GenerateConfig) -> tuple[list[Unit], list[QueryTask]]:
    units = plan_units(refs, cfg.anomalies, cfg.seed, cfg.views_per_variant, cfg.balance)
    return units, plan_tasks(out, units, cfg.shard_size, cfg.twins)


def _claim(out: Path, refs: list[ShapeRef], cfg: GenerateConfig, tasks: list[QueryTask], skipped: list[dict] = ()):
    """The change that records this plan in dataset.json, refusing a folder of another config or shapes.
    ``skipped``: the broken shapes left out ({shape_id, reason}), recorded beside the shapes."""
    ids = [r.shape_id for r in refs]

    def change(data: dict) -> dict:
        claim_section(data, "queries", asdict(cfg), out)
        recorded = data.get("shapes")
        if recorded and [r["shape_id"] for r in recorded] != ids:
            raise InputError(out / "dataset.json", "folder holds a dataset of other shapes; use a new --out")
        data["shapes"] = [r.to_json() for r in refs]
        if skipped:
            data["shapes_skipped"] = list(skipped)
        data["splits"] = {"ratios": list(cfg.split_ratios), "seed": cfg.seed,
                          "shapes": assign_splits(ids, tuple(cfg.split_ratios), cfg.seed)}
        data["queries"]["shards"] = [Path(t.shard).name for t in tasks]
        return data

    return change


def check_plan(out: Path, refs: list[ShapeRef], cfg: GenerateConfig) -> None:
    """What ``record_plan`` would refuse, refused without writing anything."""
    cfg.validate()
    if not refs:
        raise InputError(out, "no shapes to generate from")
    _claim(Path(out), refs, cfg, plan(Path(out), refs, cfg)[1])(read_dataset(out) or {})


def record_plan(out: Path, refs: list[ShapeRef], cfg: GenerateConfig,
                skipped: list[dict] = ()) -> tuple[list[Unit], list[QueryTask]]:
    """Claim OUT for this config and write the plan (shapes, splits, shard list) into dataset.json
    (under the folder's lock: array members starting together each check and record the same plan)."""
    cfg.validate()
    if not refs:
        raise InputError(out, "no shapes to generate from")
    out = Path(out)
    units, tasks = plan(out, refs, cfg)
    update_dataset(out, _claim(out, refs, cfg, tasks, skipped))
    return units, tasks


def generate(out: Path, refs: list[ShapeRef], cfg: GenerateConfig, workers: int = 1, device: str = "cpu",
             on_shard: Callable[[dict], None] | None = None, num_shards: int = 1, shard_index: int = 0,
             executor: str = "local", address: str | None = None, pin: bool = True,
             skipped: list[dict] = ()) -> GenerateStats:
    """Run this process's share of the plan; ``num_shards``/``shard_index`` select a job-array share;
    ``skipped``: broken shapes left out of ``refs``, recorded in dataset.json;
    ``pin``: bind each local worker to its own cores (``executor.run_tasks``)."""
    out = Path(out)
    check_share(num_shards, shard_index)
    units, tasks = record_plan(out, refs, cfg, skipped)
    mine = task_share(tasks, num_shards, shard_index)
    remove_stale_tmp(out)
    remove_stale_tmp(out / "shards")
    todo = [t for t in mine if not is_complete(Path(t.shard))]
    stats = GenerateStats(units=sum(len(t.units) for t in mine), shards_total=len(mine),
                          shards_skipped=len(mine) - len(todo))
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    settings = cfg.settings(out)
    t0 = time.perf_counter()
    for res in run_tasks("brokenchairs.blender_scripts.query_worker:run", todo, workers,
                         "brokenchairs.blender_scripts.query_worker:init",
                         (asdict(settings), [r.to_json() for r in refs], device, threads), executor, address,
                         cpus=threads, pin=pin):
        stats.kept.update(res["kept"])
        stats.rejections.update(res["rejections"])
        stats.render_seconds += res["render_seconds"]
        stats.worker_seconds += res["seconds"]
        stats.write_seconds += res.get("write_seconds", 0.0)
        stats.images_rendered += res["images_rendered"]
        stats.mask_renders += res.get("mask_renders", 0)
        if on_shard:
            on_shard(res)
    stats.seconds = time.perf_counter() - t0
    # Again at the end: a worker SIGKILLed just before this run started may still have been
    # exiting (not yet a zombie) at the first sweep, and its temporary would outlive the run.
    remove_stale_tmp(out / "shards")
    finish(out, tasks)
    return stats


def finish(out: Path, tasks: list[QueryTask]) -> None:
    """Rebuild manifest.jsonl (plan order) and the counts in dataset.json from complete shards.
    Under the folder's lock; every member that finds all shards complete writes the same bytes."""
    if not all(is_complete(Path(t.shard)) for t in tasks):
        return  # another run (or array job) still owes shards: leave the manifest for it
    lines, counts = [], Counter()
    for t in tasks:
        for line in read_manifest_lines(Path(t.shard)):
            lines.append(line)
            counts[json.loads(line)["anomaly_type"]] += 1
    with dataset_lock(out):
        write_atomic(out / MANIFEST, "".join(f"{line}\n" for line in lines))
        data = read_dataset(out) or {}
        data["queries"]["counts"] = dict(sorted(counts.items()))
        data["queries"]["complete"] = True
        write_dataset(out, data)
