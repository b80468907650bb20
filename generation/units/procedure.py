"""One query unit (and one shard task) run against a renderer: the order of renders and the
quality-control decisions between them, in plain Python.

An anomaly's views are checked on masks-only renders (the object index alone: Cycles writes it
from the first camera hit, so its masks are those of the full render): the normal shape from
every view (``mask_old``, frame check), then -- after replacing only the changed part -- the
anomalous shape from the views that passed (visibility checks). Full-quality renders are spent
only on kept views: the anomalous image and, with ``twins``, its normal twin (same camera,
materials and light). A normal unit renders at full quality at once and checks the frame on that
render. The renderer is anything with ``UnitRenderer``'s methods; ``blender_scripts.query_scene``
is Blender's.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from brokenchairs.dataset.queries import QuerySample, bbox_of, twin_id
from brokenchairs.dataset.shards import write_query_shard
from brokenchairs.generation.render.materials.library import Material
from brokenchairs.generation.units.quality import QCConfig, anomaly_rejection, frame_rejection
from brokenchairs.generation.anomalies import DonorPool
from brokenchairs.generation.units.scene import UnitScene, describe_unit
from brokenchairs.generation.units.tasks import QuerySettings, QueryTask, Unit


class UnitRenderer(Protocol):
    def new_session(self) -> None: ...

    def set_light(self, light_id: int) -> None: ...

    def set_parts(self, parts: Sequence, index_of: dict[int, int], assignment: dict[str, str],
                  materials: dict[str, Material]) -> None: ...

    def render_views(self, K: np.ndarray, cams: Sequence[np.ndarray], masks_only: bool = False) -> list[dict]:
        """Per camera: ``index`` (H,W) int object-index pass, and unless masks_only ``rgb`` (H,W,3)
        uint8 and ``depth`` (H,W) float32."""
        ...


def render_unit(scene: UnitScene, renderer: UnitRenderer, materials: dict[str, Material], twins: bool,
                qc: QCConfig, clock: list[float], counters: Counter) -> list[tuple[QuerySample, dict]]:
    """The unit's kept samples with their manifest extras; ``clock[0]`` accumulates render seconds."""

    def render(cams, masks_only=False):
        t = time.perf_counter()
        out = renderer.render_views(scene.K, cams, masks_only=masks_only)
        clock[0] += time.perf_counter() - t
        return out

    unit, k = scene.unit, scene.changed_index
    renderer.set_light(scene.light_id)
    renderer.set_parts(scene.shape.parts(), scene.part_index, scene.assignment, materials)
    renderer.new_session()  # the unit's images depend on the unit alone, not on this worker's history
    masks_only = scene.variant is not None
    normal = render(scene.cams, masks_only)
    counters["mask_renders" if masks_only else "images_rendered"] += len(scene.cams)
    keep = []
    for j, n in enumerate(normal):
        reason = frame_rejection(n["index"] > 0, qc)
        if reason:
            counters[f"rejected:{reason}"] += 1
        else:
            keep.append(j)
    anomalous = {}
    if scene.variant is not None and keep:
        renderer.set_parts(scene.variant.parts(), scene.part_index, scene.assignment, materials)
        passed = []
        for j, a in zip(keep, render([scene.cams[j] for j in keep], masks_only=True)):
            a_obj = a["index"] > 0
            reason = (frame_rejection(a_obj, qc)
                      or anomaly_rejection(a["index"] == k, normal[j]["index"] == k, a_obj, unit.kind, qc))
            if reason:
                counters[f"rejected:{reason}"] += 1
            else:
                passed.append(j)
        counters["mask_renders"] += len(keep)
        keep = passed
        anomalous = dict(zip(keep, render([scene.cams[j] for j in keep])))
        counters["images_rendered"] += len(anomalous)
        if keep and twins:  # the twins: the normal shape again, at full quality
            renderer.set_parts(scene.shape.parts(), scene.part_index, scene.assignment, materials)
            for j, twin in zip(keep, render([scene.cams[j] for j in keep])):
                normal[j] = twin
            counters["images_rendered"] += len(keep)
    return assemble_samples(scene, keep, normal, anomalous, twins)


def assemble_samples(scene: UnitScene, keep: list[int], normal: list[dict], anomalous: dict[int, dict],
                     twins: bool) -> list[tuple[QuerySample, dict]]:
    """Samples of the kept views: the anomalous one and, with ``twins`` (or for a normal unit), the
    normal render of the same camera; extras name each twin's partner."""
    unit, k, variant = scene.unit, scene.changed_index, scene.variant
    mid = scene.material_id
    samples = []
    empty = np.zeros((scene.resolution, scene.resolution), bool)
    for j in keep:
        view, cam, n = scene.views[j], scene.cams[j], normal[j]
        base = dict(shape_id=scene.shape.shape_id, unit_id=unit.unit_id, K=scene.K, world_to_cam=cam,
                    azimuth=view.azimuth, elevation=view.elevation, light_id=scene.light_id, material_id=mid)
        twin = None
        if variant is None or twins:  # a full render of the normal shape (else n holds masks only)
            view_id = f"{unit.unit_id}/v{j}"
            twin = QuerySample(sample_id=twin_id(view_id) if variant is not None else view_id,
                               anomaly_type="normal", part_path="", image=n["rgb"], object_mask=n["index"] > 0,
                               mask_new=empty, mask_old=empty, bbox=np.full(4, np.nan, np.float32), depth=n["depth"],
                               **base)
        if variant is None:
            samples.append((twin, {}))
            continue
        a = anomalous[j]
        mask_new, mask_old = a["index"] == k, n["index"] == k
        sample = QuerySample(sample_id=f"{unit.unit_id}/v{j}", anomaly_type=unit.kind, part_path=scene.record.part_path,
                             image=a["rgb"], object_mask=a["index"] > 0, mask_new=mask_new, mask_old=mask_old,
                             bbox=bbox_of(mask_new | mask_old), depth=a["depth"], record=scene.record.to_json(), **base)
        if twin is not None:
            samples.append((sample, {"twin": twin.sample_id}))
            samples.append((twin, {"twin": sample.sample_id}))
        else:
            samples.append((sample, {}))
    return samples


def manifest_line(s: QuerySample, shard: str, row: int, extra: dict) -> str:
    d = {"sample_id": s.sample_id, "shape_id": s.shape_id, "unit_id": s.unit_id, "label": s.label,
         "anomaly_type": s.anomaly_type, "part_path": s.part_path, "shard": shard, "row": row,
         "bbox": None if np.isnan(s.bbox).any() else [float(x) for x in s.bbox],
         "azimuth": s.azimuth, "elevation": s.elevation, "light_id": s.light_id, "material_id": s.material_id,
         "record": s.record or None, **extra}
    return json.dumps(d, sort_keys=True)


def write_samples(shard_path: Path, rows: list[tuple[QuerySample, dict]], resolution: int) -> float:
    """The shard of ``rows`` with its manifest lines; returns the seconds the write took."""
    shard = Path(shard_path).name
    lines = [manifest_line(s, shard, i, extra) for i, (s, extra) in enumerate(rows)]
    t = time.perf_counter()
    write_query_shard(Path(shard_path), [s for s, _ in rows], lines, {"resolution": resolution})
    return time.perf_counter() - t


def run_unit(unit: Unit, renderer: UnitRenderer, settings: QuerySettings, library: list[Material], pool: DonorPool,
             clock: list[float], counters: Counter) -> list[tuple[QuerySample, dict]]:
    """One unit: its scene described, rendered and checked (``render_unit``)."""
    scene = describe_unit(unit, settings, library, pool, counters)
    if scene is None:
        return []
    qc = QCConfig(min_pixels_at_resolution=settings.min_anomaly_pixels)
    return render_unit(scene, renderer, {m.name: m for m in library}, settings.twins, qc, clock, counters)


def run_query_task(task: QueryTask, renderer: UnitRenderer, settings: QuerySettings, library: list[Material],
                   pool: DonorPool) -> dict:
    """Every unit of ``task`` described, rendered and checked, then its shard written; returns the
    shard's figures (kept samples per type, rejections, renders, seconds)."""
    t0 = time.perf_counter()
    clock, counters = [0.0], Counter()
    rows: list[tuple[QuerySample, dict]] = []
    for unit in task.units:
        rows.extend(run_unit(unit, renderer, settings, library, pool, clock, counters))
    write_seconds = write_samples(Path(task.shard), rows, settings.resolution)
    kept = Counter(s.anomaly_type for s, _ in rows)
    rendered = counters.pop("images_rendered", 0)
    mask_renders = counters.pop("mask_renders", 0)
    return {"shard": Path(task.shard).name, "units": len(task.units), "kept": dict(kept), "rejections": dict(counters),
            "images_rendered": rendered, "mask_renders": mask_renders, "seconds": time.perf_counter() - t0,
            "render_seconds": clock[0], "write_seconds": write_seconds}
