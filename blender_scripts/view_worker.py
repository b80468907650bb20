"""Worker-process side of ``render-views``: one warm Blender, many shards."""

from __future__ import annotations

import time
from pathlib import Path

from brokenchairs.blender_scripts.views import ViewRenderer
from brokenchairs.generation.units.tasks import ViewsConfig, ViewTask
from brokenchairs.dataset.shards import write_view_shard
from brokenchairs.generation.shapes.sources import load_ref

_state: dict = {}


def init(config: dict, threads: int | None = None) -> None:
    cfg = ViewsConfig(**config)
    _state["cfg"] = cfg
    _state["renderer"] = ViewRenderer(cfg.resolution, cfg.stride, cfg.fov_deg, threads)


def run(task: ViewTask) -> dict:
    cfg: ViewsConfig = _state["cfg"]
    renderer: ViewRenderer = _state["renderer"]
    viewpoints = cfg.viewpoints()
    t0 = time.perf_counter()
    render_s = 0.0

    def viewsets():
        nonlocal render_s
        for ref in task.refs:
            shape = load_ref(ref)
            t = time.perf_counter()
            vs = renderer.render(shape, viewpoints)
            render_s += time.perf_counter() - t
            yield vs

    n = write_view_shard(Path(task.shard), viewsets(), {"resolution": cfg.resolution, "stride": cfg.stride})
    return {"shard": Path(task.shard).name, "shapes": n, "views": n * cfg.views,
            "seconds": time.perf_counter() - t0, "render_seconds": render_s}
