"""Plan and run reference-view rendering for a dataset folder (``brokenchairs render-views``).

Planning is pure: shapes in a fixed order -> shards of ``shard_size`` shapes
(``shards/views-00000.h5`` ...). A shard's content depends only on its shapes and the config, so
any worker count gives the same files, and a re-run skips shards that are complete.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from brokenchairs.errors import InputError
from brokenchairs.dataset.dataset_json import claim_section, update_dataset
from brokenchairs.generation.pipeline.executor import run_tasks
from brokenchairs.generation.pipeline.plan import check_share, task_share
from brokenchairs.dataset.shards import is_complete, remove_stale_tmp
from brokenchairs.generation.shapes.sources import ShapeRef
from brokenchairs.generation.units.tasks import ViewsConfig, ViewTask


@dataclass
class ViewRunStats:
    shards_total: int = 0
    shards_skipped: int = 0
    shapes: int = 0
    views: int = 0
    seconds: float = 0.0
    render_seconds: float = 0.0
    worker_seconds: float = 0.0
    per_shard: list = field(default_factory=list)


def plan_view_tasks(out: Path, refs: list[ShapeRef], shard_size: int) -> list[ViewTask]:
    n = max(1, math.ceil(len(refs) / shard_size))
    return [ViewTask(str(Path(out) / "shards" / f"views-{k:05d}.h5"), tuple(refs[k * shard_size:(k + 1) * shard_size]))
            for k in range(n)]


def render_reference_views(out: Path, refs: list[ShapeRef], cfg: ViewsConfig, workers: int = 1, shard_size: int = 32,
                           on_shard: Callable[[dict], None] | None = None, num_shards: int = 1, shard_index: int = 0,
                           executor: str = "local", address: str | None = None, pin: bool = True) -> ViewRunStats:
    """Render this process's share of the views of ``refs`` into ``out``; returns timing and counts.
    ``pin``: bind each local worker to its own cores (``executor.run_tasks``)."""
    cfg.validate()
    if not refs:
        raise InputError(out, "no shapes to render")
    ids = [r.shape_id for r in refs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise InputError(out, f"shape ids are not unique ({', '.join(dup)})")
    check_share(num_shards, shard_index)
    out = Path(out)
    tasks = plan_view_tasks(out, refs, shard_size)

    def change(data: dict) -> dict:
        claim_section(data, "views", asdict(cfg) | {"shard_size": shard_size}, out)
        data.setdefault("shapes", [r.to_json() for r in refs])
        data["views"]["shards"] = {Path(t.shard).name: [r.shape_id for r in t.refs] for t in tasks}
        return data

    update_dataset(out, change)
    mine = task_share(tasks, num_shards, shard_index)
    remove_stale_tmp(out / "shards")
    todo = [t for t in mine if not is_complete(Path(t.shard))]
    stats = ViewRunStats(shards_total=len(mine), shards_skipped=len(mine) - len(todo))
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    t0 = time.perf_counter()
    for result in run_tasks("brokenchairs.blender_scripts.view_worker:run", todo, workers,
                            "brokenchairs.blender_scripts.view_worker:init", (asdict(cfg), threads), executor, address,
                            cpus=threads, pin=pin):
        stats.shapes += result["shapes"]
        stats.views += result["views"]
        stats.render_seconds += result["render_seconds"]
        stats.worker_seconds += result["seconds"]
        stats.per_shard.append(result)
        if on_shard:
            on_shard(result)
    stats.seconds = time.perf_counter() - t0
    remove_stale_tmp(out / "shards")  # again: a worker killed just before this run may have been exiting at the first sweep
    return stats
