"""Worker-process side of ``generate``: one warm Cycles scene, many work units per shard.

Per unit: make the anomaly (pure Python), assign materials and a light, draw the views. An
anomaly's views are checked on masks-only renders (the object index alone: 1 sample, one
unshaded material, no image or depth; Cycles writes the index from the first camera hit, so its
masks are those of the full render): the normal shape from every view (``mask_old``, frame
check), then -- after replacing only the changed part -- the anomalous shape from the views that
passed (visibility checks).
Full-quality renders (a 1/4-resolution ground pass plus the object's rectangle composited over
it, ``query_scene``) are spent only on kept views: the anomalous image and, with ``twins``, its
normal twin (same camera, materials and light). A normal unit renders at full quality at once
and checks the frame on that render.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

import brokenchairs.blender_scripts  # noqa: F401  (bpy before pymeshlab)
from brokenchairs.blender_scripts.query_scene import QueryRenderer
from brokenchairs.generation.anomalies import AnomalyFailed, DonorPool, make_anomaly
from brokenchairs.generation.cameras import bbox_center, camera_for, intrinsics, query_viewpoints
from brokenchairs.generation.generate import GenerateConfig
from brokenchairs.generation.plan import QueryTask, Unit
from brokenchairs.generation.materials.assign import assign_materials, material_id
from brokenchairs.generation.materials.library import load_library
from brokenchairs.generation.queries import QCConfig, QuerySample, anomaly_rejection, bbox_of, frame_rejection
from brokenchairs.generation.render_settings import LIGHT_PRESETS
from brokenchairs.generation.shards import write_query_shard
from brokenchairs.generation.sources import ShapeRef, load_ref

_state: dict = {}


def init(config: dict, pool_refs: list[dict], device: str = "cpu", threads: int | None = None) -> None:
    cfg = GenerateConfig(**{**config, "anomalies": tuple(config["anomalies"]),
                            "split_ratios": tuple(config["split_ratios"])})
    library = load_library(cfg.materials)
    _state.update(cfg=cfg, library=library, by_name={m.name: m for m in library}, qc=QCConfig(min_pixels_at_resolution=cfg.min_anomaly_pixels),
                  pool=DonorPool([ShapeRef.from_json(r) for r in pool_refs]),
                  renderer=QueryRenderer(cfg.resolution, cfg.samples, device, threads, cfg.denoise))


def _timed_views(renderer: QueryRenderer, K, cams: list, clock: list[float], masks_only: bool = False) -> list[dict]:
    t = time.perf_counter()
    out = renderer.render_views(K, cams, masks_only=masks_only)
    clock[0] += time.perf_counter() - t
    return out


def render_unit(unit: Unit, clock: list[float], counters: Counter) -> list[tuple[QuerySample, dict]]:
    cfg: GenerateConfig = _state["cfg"]
    renderer: QueryRenderer = _state["renderer"]
    rng = np.random.default_rng(unit.seed)
    shape = load_ref(unit.shape)
    index_of = {p.node_id: k + 1 for k, p in enumerate(shape.parts())}
    variant, record = None, None
    if unit.kind != "normal":
        try:
            variant, record = make_anomaly(shape, unit.kind, rng, pool=_state["pool"])
        except AnomalyFailed as exc:
            counters["rejected:anomaly_failed"] += 1
            counters.update({f"rejected:3d:{k}": v for k, v in exc.rejections.items()})
            return []
        counters.update({f"rejected:3d:{k}": v for k, v in record.rejections.items()})
    assignment = assign_materials(shape, _state["library"], rng)
    light_id = int(rng.integers(len(LIGHT_PRESETS)))
    views = query_viewpoints(rng, unit.views)
    K = intrinsics(cfg.resolution, fov_deg=cfg.fov_deg)
    target = bbox_center(shape.bounds)  # the reference's centre: the variant stays in its frame
    cams = [camera_for(v, target) for v in views]
    renderer.set_light(light_id)
    renderer.set_parts(shape.parts(), index_of, assignment, _state["by_name"])
    renderer.new_session()  # the unit's images depend on the unit alone, not on this worker's history
    qc: QCConfig = _state["qc"]
    k = index_of[record.part_id] if record is not None else 0
    # Quality control needs only the object-index pass, which Cycles writes from the first camera
    # hit: a masks-only render has exactly the masks of the full render. An anomaly's views are
    # checked on masks-only renders first, so full-quality renders are spent only on kept views.
    # (A normal unit renders at full quality at once: its only check, the frame, almost never fails.)
    masks_only = variant is not None
    normal = _timed_views(renderer, K, cams, clock, masks_only)
    counters["mask_renders" if masks_only else "images_rendered"] += len(cams)
    keep = []
    for j, n in enumerate(normal):
        reason = frame_rejection(n["index"] > 0, qc)
        if reason:
            counters[f"rejected:{reason}"] += 1
        else:
            keep.append(j)
    anomalous = {}
    if variant is not None and keep:
        renderer.set_parts(variant.parts(), index_of, assignment, _state["by_name"])
        passed = []
        for j, a in zip(keep, _timed_views(renderer, K, [cams[j] for j in keep], clock, masks_only=True)):
            a_obj = a["index"] > 0
            reason = (frame_rejection(a_obj, qc)
                      or anomaly_rejection(a["index"] == k, normal[j]["index"] == k, a_obj, unit.kind, qc))
            if reason:
                counters[f"rejected:{reason}"] += 1
            else:
                passed.append(j)
        counters["mask_renders"] += len(keep)
        keep = passed
        anomalous = dict(zip(keep, _timed_views(renderer, K, [cams[j] for j in keep], clock)))
        counters["images_rendered"] += len(anomalous)
        if keep and cfg.twins:  # the twins: the normal shape again, at full quality
            renderer.set_parts(shape.parts(), index_of, assignment, _state["by_name"])
            for j, twin in zip(keep, _timed_views(renderer, K, [cams[j] for j in keep], clock)):
                normal[j] = twin
            counters["images_rendered"] += len(keep)
    mid = material_id(assignment)
    samples = []
    empty = np.zeros((cfg.resolution, cfg.resolution), bool)
    for j in keep:
        view, cam, n = views[j], cams[j], normal[j]
        base = dict(shape_id=shape.shape_id, unit_id=unit.unit_id, K=K, world_to_cam=cam, azimuth=view.azimuth,
                    elevation=view.elevation, light_id=light_id, material_id=mid)
        twin = None
        if variant is None or cfg.twins:  # a full render of the normal shape (else n holds masks only)
            twin = QuerySample(sample_id=f"{unit.unit_id}/v{j}" + ("/normal" if variant is not None else ""),
                               anomaly_type="normal", part_path="", image=n["rgb"], object_mask=n["index"] > 0,
                               mask_new=empty, mask_old=empty, bbox=np.full(4, np.nan, np.float32), depth=n["depth"],
                               **base)
        if variant is None:
            samples.append((twin, {}))
            continue
        a = anomalous[j]
        a_obj = a["index"] > 0
        mask_new, mask_old = a["index"] == k, n["index"] == k
        sample = QuerySample(sample_id=f"{unit.unit_id}/v{j}", anomaly_type=unit.kind, part_path=record.part_path,
                             image=a["rgb"], object_mask=a_obj, mask_new=mask_new, mask_old=mask_old,
                             bbox=bbox_of(mask_new | mask_old), depth=a["depth"], record=record.to_json(), **base)
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


def run(task: QueryTask) -> dict:
    t0 = time.perf_counter()
    clock, counters = [0.0], Counter()
    rows: list[tuple[QuerySample, dict]] = []
    for unit in task.units:
        rows.extend(render_unit(unit, clock, counters))
    shard = Path(task.shard).name
    samples = [s for s, _ in rows]
    lines = [manifest_line(s, shard, i, extra) for i, (s, extra) in enumerate(rows)]
    t_write = time.perf_counter()
    write_query_shard(Path(task.shard), samples, lines, {"resolution": _state["cfg"].resolution})
    write_seconds = time.perf_counter() - t_write
    kept = Counter(s.anomaly_type for s in samples)
    rendered = counters.pop("images_rendered", 0)
    mask_renders = counters.pop("mask_renders", 0)
    return {"shard": shard, "units": len(task.units), "kept": dict(kept), "rejections": dict(counters),
            "images_rendered": rendered, "mask_renders": mask_renders, "seconds": time.perf_counter() - t0, "render_seconds": clock[0],
            "write_seconds": write_seconds}
