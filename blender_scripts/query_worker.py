"""Worker-process side of ``generate``: one warm Cycles scene, many shard tasks.

``init`` builds the Blender renderer once per process; ``run`` hands each task to
``generation.units.procedure.run_query_task``, which decides every unit's scene and quality control
in plain Python and asks this renderer only for pixels. Nothing here imports the run layer
(``generation.pipeline``): the records come from ``generation.units.tasks``.
"""

from __future__ import annotations

import brokenchairs.blender_scripts  # noqa: F401  (bpy before pymeshlab)
from brokenchairs.blender_scripts.query_scene import QueryRenderer
from brokenchairs.generation.anomalies import DonorPool
from brokenchairs.generation.render.materials.library import load_library
from brokenchairs.generation.shapes.sources import ShapeRef
from brokenchairs.generation.units.procedure import run_query_task
from brokenchairs.generation.units.tasks import QuerySettings, QueryTask

_state: dict = {}


def init(settings: dict, pool_refs: list[dict], device: str = "cpu", threads: int | None = None) -> None:
    s = QuerySettings(**settings)
    _state.update(settings=s, library=load_library(s.materials), pool=DonorPool([ShapeRef.from_json(r) for r in pool_refs]),
                  renderer=QueryRenderer(s.resolution, s.samples, device, threads, s.denoise))


def run(task: QueryTask) -> dict:
    return run_query_task(task, _state["renderer"], _state["settings"], _state["library"], _state["pool"])
