"""``export-official``: a dataset folder -> the authors' release layout (``official`` documents every file).

The release is 256 x 256, its grid 32 x 32: a dataset of another resolution is resampled (images
Lanczos, masks by area with any coverage kept, depth nearest, ``K`` scaled, the grid rebuilt from the
resampled depth); boxes and ``IoU`` come from the written masks, so an import of the export gives the
same files back. The folder is written beside its target and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from brokenchairs.errors import InputError
from brokenchairs.dataset.cameras import QUERY_RADIUS
from brokenchairs.dataset.dataset_json import read_dataset
from brokenchairs.generation.interop.official import (BOX_FRAME, GRID, SIZE, annotation_name, check_shape_id, image_stem,
                                              texture_id, to_release_rt)
from brokenchairs.generation.interop.official_points import pixel_rows_cols, read_points, surface_points, visible
from brokenchairs.dataset.queries import bbox_of
from brokenchairs.dataset.shards import as_str, open_shard, read_view_group
from brokenchairs.generation.shapes.sources import ShapeRef, load_ref
from brokenchairs.dataset.views import ViewSet, patch_points
from brokenchairs.shared_folder import write_atomic_folder


@dataclass(frozen=True)
class _Row:
    shard: str
    index: int
    sample_id: str
    shape_id: str
    anomaly_type: str
    stem: str


def export_official(dataset: Path, folder: Path) -> dict:
    """Write ``dataset`` into ``folder`` (new or empty) in the release's layout; returns counts."""
    dataset, folder = Path(dataset), Path(folder)
    data = read_dataset(dataset)
    if data is None or not (data.get("queries") or {}).get("shards"):
        raise InputError(dataset, "not a dataset folder with query shards")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(folder, "exists and is not empty: export into a new folder")
    view_shards = (data.get("views") or {}).get("shards") or {}
    with_views = {sid for ids in view_shards.values() for sid in ids}
    rows = _plan_rows(dataset, data["queries"]["shards"])
    lacking = sorted({r.shape_id for r in rows} - with_views)
    if lacking:
        raise InputError(dataset, f"{len(lacking)} shapes of the queries have no reference views (e.g. {lacking[0]}): "
                                  "run `brokenchairs render-views` (the authors' loader reads shapes/shape_<id>/mv_images)")
    for sid in sorted(with_views):
        check_shape_id(sid, dataset / "dataset.json")
    refs = {d["shape_id"]: ShapeRef.from_json(d) for d in data.get("shapes") or []}
    with write_atomic_folder(folder, empty_only=True) as tmp:  # replaces the empty folder, if any, at the end
        source_res = _write_queries(dataset, rows, tmp)
        for name in view_shards:
            with open_shard(dataset / "shards" / name, "views") as f:
                for sid in f:
                    _write_views(read_view_group(f[sid]), dataset, refs.get(sid), tmp / "shapes" / f"shape_{sid}")
        splits = (data.get("splits") or {}).get("shapes") or {}
        (tmp / "split.json").write_text(json.dumps({k: splits.get(k, []) for k in ("train", "val", "test")}, indent=1))
    return {"images": len(rows), "shapes": len(with_views), "resampled_from": source_res if source_res != SIZE else None}


# --- queries --------------------------------------------------------------------------------------------
def _plan_rows(dataset: Path, shard_names: list[str]) -> list[_Row]:
    """Every query with its file stem; stems that two queries would share get a suffix from each sample id
    (so the names do not depend on the order of the shards)."""
    rows = []
    for name in shard_names:
        with open_shard(dataset / "shards" / name, "queries") as f:
            cols = {k: f[k][()] for k in ("manifest", "shape_id", "material_id", "sample_id", "azimuth", "elevation",
                                           "light_id")}
        for i, line in enumerate(cols["manifest"]):
            kind, shape = json.loads(line)["anomaly_type"], as_str(cols["shape_id"][i])
            check_shape_id(shape, dataset / "shards" / name)
            stem = image_stem(shape, as_str(cols["material_id"][i]), QUERY_RADIUS, float(cols["azimuth"][i]),
                              float(cols["elevation"][i]), int(cols["light_id"][i]), kind)
            rows.append(_Row(name, i, as_str(cols["sample_id"][i]), shape, kind, stem))
    dup = {s for s, n in Counter(r.stem for r in rows).items() if n > 1}
    return [r if r.stem not in dup else
            _Row(r.shard, r.index, r.sample_id, r.shape_id, r.anomaly_type,
                 f"{r.stem}_{hashlib.sha1(r.sample_id.encode()).hexdigest()[:6]}") for r in rows]


def _resized(arr: np.ndarray, method) -> np.ndarray:
    return arr if arr.shape[0] == SIZE and arr.shape[1] == SIZE else np.array(Image.fromarray(arr).resize((SIZE, SIZE), method))


def _mask(mask: np.ndarray) -> np.ndarray:
    return _resized(mask.astype(np.uint8) * 255, Image.BOX) > 0


def _png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path)


def _write_queries(dataset: Path, rows: list[_Row], out: Path) -> int:
    res = SIZE
    by_shard: dict[str, list[_Row]] = {}
    for r in rows:
        by_shard.setdefault(r.shard, []).append(r)
    with tqdm(total=len(rows), desc="export images", unit="img", disable=None) as bar:
        for name, shard_rows in by_shard.items():
            with open_shard(dataset / "shards" / name, "queries") as f:
                for r in shard_rows:
                    res = _write_query(f, r, out)
                    bar.update()
    return res


def _write_query(f, r: _Row, out: Path) -> int:
    i, kind = r.index, r.anomaly_type
    manifest = json.loads(f["manifest"][i])
    img_dir, ann_dir = out / "images" / kind, out / "annotations" / kind
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    image = f["image"][i]
    src = image.shape[1]
    _png(img_dir / f"{r.stem}.png", _resized(image, Image.LANCZOS))
    K = f["K"][i].copy()
    K[:2] *= SIZE / src
    mid = as_str(f["material_id"][i])
    info = {"texture_id": texture_id(mid), "2d_bbox": None, "IoU": None, "K": K.tolist(),
            "RT": to_release_rt(f["world_to_cam"][i]).tolist(), "sample_id": r.sample_id, "shape_id": r.shape_id,
            "anomaly_type": kind, "part_path": manifest.get("part_path", ""), "material_id": mid,
            "azimuth_rad": float(f["azimuth"][i]), "elevation_rad": float(f["elevation"][i]), "radius": QUERY_RADIUS,
            "light": int(f["light_id"][i])}
    if kind != "normal":
        new, old = _mask(f["mask_new"][i]), _mask(f["mask_old"][i])
        box, scale = bbox_of(new | old), BOX_FRAME / SIZE
        if np.isnan(box).any():  # every mask pixel lost in resampling: the source box, rescaled
            box, scale = f["bbox"][i], BOX_FRAME / src
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        info["2d_bbox"] = [x0, y0, x1 - x0, y1 - y0]
        union = (new | old).sum()
        info["IoU"] = float((new & old).sum() / union) if union else 0.0
        if new.any():
            _png(ann_dir / annotation_name(r.stem, "mask_new"), new.astype(np.uint8) * 255)
        _png(ann_dir / annotation_name(r.stem, "mask_old"), old.astype(np.uint8) * 255)
    (ann_dir / annotation_name(r.stem, "info")).write_text(json.dumps(info))
    return src


# --- reference views ------------------------------------------------------------------------------------
def _point_records(vs: ViewSet, dataset: Path, ref: ShapeRef | None) -> tuple[np.ndarray, np.ndarray]:
    """(V, P, 2) pxy in the 256 frame and (V, P) is_visible: kept from an import, else sampled on the mesh."""
    kept = read_points(dataset, vs.shape_id, vs.num_views)
    if kept is not None:
        return kept
    if ref is None or (ref.kind == "mesh" and not ref.path):
        raise InputError(dataset, f"shape {vs.shape_id}: no mesh to sample the release's surface points from "
                                  "(and no official-points/ records from an import)")
    pts = surface_points(load_ref(ref))
    scale = np.diag([SIZE / vs.gray.shape[2], SIZE / vs.gray.shape[1], 1.0])
    vis = np.stack([visible(pts, vs.depth[k], vs.K[k], vs.world_to_cam[k]) for k in range(vs.num_views)])
    pxy = np.stack([pixel_rows_cols(pts, scale @ vs.K[k], vs.world_to_cam[k]) for k in range(vs.num_views)])
    return pxy, vis


def _write_views(vs: ViewSet, dataset: Path, ref: ShapeRef | None, shape_dir: Path) -> None:
    if vs.num_views < 2:
        raise InputError(dataset, f"shape {vs.shape_id} has {vs.num_views} reference view: the authors' loader "
                                  "draws two different views per item (render-views --views 2 or more)")
    pxy, vis = _point_records(vs, dataset, ref)
    mv = shape_dir / "mv_images"
    mv.mkdir(parents=True, exist_ok=True)
    src = vs.gray.shape[2]
    for k in range(vs.num_views):
        name = f"{k:03d}"
        _png(mv / f"{name}.png", _resized(vs.gray[k], Image.LANCZOS))
        depth = _resized(vs.depth[k].astype(np.float32), Image.NEAREST)
        K = vs.K[k].copy()
        K[:2] *= SIZE / src
        rt = to_release_rt(vs.world_to_cam[k])
        (mv / f"{name}.json").write_text(json.dumps({"RT": rt.tolist(), "RT_": np.linalg.inv(rt).tolist(),
                                                     "K": K.tolist()}, sort_keys=True))
        if vs.patch_xyz.shape[1:3] == (GRID, GRID):
            xyz, valid = vs.patch_xyz[k], vs.patch_valid[k]
        else:
            xyz, valid = patch_points(depth, K, vs.world_to_cam[k], SIZE // GRID)
        np.save(mv / f"{name}.npy", {"pxy": np.ascontiguousarray(pxy[k], np.int64),
                                     "is_visible": np.ascontiguousarray(vis[k], bool),
                                     "xyz": np.where(valid[..., None], xyz, -1.0).astype(np.float64)}, allow_pickle=True)
        np.save(mv / f"{name}_depth.npy", depth)
