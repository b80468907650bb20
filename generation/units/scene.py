"""The scene of one query unit, decided in plain Python before Blender is touched.

A unit's images depend on its seed alone: one generator, seeded from the dataset seed and the
unit's id (``pipeline.plan.unit_seed``), draws in a fixed order the anomaly (a variant of the
shape and its record), the materials of the part groups, the light and the query views. The
renderer is handed the result: both shapes with one part-index table (the object-index pass
value of every part), the materials, the light, the intrinsics and one camera per view. The
variant and its normal twin therefore share cameras, materials and light by construction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from brokenchairs.dataset.cameras import Viewpoint, bbox_center, camera_for, intrinsics, query_viewpoints
from brokenchairs.generation.anomalies import AnomalyFailed, DonorPool, make_anomaly
from brokenchairs.generation.render.materials.assign import assign_materials, material_id
from brokenchairs.generation.render.materials.library import Material
from brokenchairs.generation.render.render_settings import LIGHT_PRESETS
from brokenchairs.generation.shapes.shape import Shape
from brokenchairs.generation.shapes.sources import load_ref
from brokenchairs.generation.units.tasks import QuerySettings, Unit


@dataclass
class UnitScene:
    unit: Unit
    shape: Shape
    variant: Shape | None  # None for a normal unit
    record: object | None  # the variant's ``AnomalyRecord``
    part_index: dict[int, int]  # part node id -> its object-index pass value (1-based; 0 = background)
    changed_index: int  # the changed part's pass value; 0 for a normal unit
    assignment: dict[str, str]  # part group -> material name
    light_id: int
    views: list[Viewpoint]
    K: np.ndarray
    cams: list[np.ndarray]  # world_to_cam per view
    resolution: int

    @property
    def material_id(self) -> str:
        return material_id(self.assignment)


def describe_unit(unit: Unit, settings: QuerySettings, library: list[Material], pool: DonorPool,
                  counters: Counter) -> UnitScene | None:
    """The unit's scene; None when the anomaly cannot be made (its reasons counted in ``counters``)."""
    rng = np.random.default_rng(unit.seed)
    shape = load_ref(unit.shape)
    part_index = {p.node_id: k + 1 for k, p in enumerate(shape.parts())}
    variant, record = None, None
    if unit.kind != "normal":
        try:
            variant, record = make_anomaly(shape, unit.kind, rng, pool=pool)
        except AnomalyFailed as exc:
            counters["rejected:anomaly_failed"] += 1
            counters.update({f"rejected:3d:{k}": v for k, v in exc.rejections.items()})
            return None
        counters.update({f"rejected:3d:{k}": v for k, v in record.rejections.items()})
    assignment = assign_materials(shape, library, rng)
    light_id = int(rng.integers(len(LIGHT_PRESETS)))
    views = query_viewpoints(rng, unit.views)
    target = bbox_center(shape.bounds)  # the reference's centre: the variant stays in its frame
    return UnitScene(unit=unit, shape=shape, variant=variant, record=record, part_index=part_index,
                     changed_index=part_index[record.part_id] if record is not None else 0, assignment=assignment,
                     light_id=light_id, views=views, K=intrinsics(settings.resolution, fov_deg=settings.fov_deg),
                     cams=[camera_for(v, target) for v in views], resolution=settings.resolution)
