"""``import-official``: a folder in the authors' release layout (theirs, or an export of ours) -> our shards.

Reads the names and fields ``official`` documents, and the quirks seen so far: annotations named
``info_<rest>`` (release) or ``info_render_<rest>`` (our older exports), likewise the masks; no
``mask_new`` for missing parts (empty); images of another size (resized; boxes from the 512-frame
``2d_bbox`` when the masks are empty); images without an info file (camera from the file name);
``RT`` in the OpenGL frame (release) or OpenCV (our older exports); view depth in ``<view>_depth.npy``,
``mv_depth/<view>.npy`` or none (rebuilt per patch from ``xyz``); per-point ``pxy``/``is_visible``
records (kept in ``official-points/`` for a later export) or our older per-cell ones (dropped); stray
files. Query depth and object masks are not in the release: zeros, and non-white pixels.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from brokenchairs.data_manifests.anomaly_types import ANOMALY_CODES
from brokenchairs.errors import InputError
from brokenchairs.dataset.dataset_json import update_dataset
from brokenchairs.generation.interop.official import BOX_FRAME, NAME, annotation_candidates, from_release_rt
from brokenchairs.generation.interop.official_points import write_points
from brokenchairs.dataset.queries import QuerySample, bbox_of
from brokenchairs.dataset.shards import SCHEMA_VERSION, write_query_shard, write_view_shard
from brokenchairs.dataset.views import ViewSet


def _load_rgb(path: Path, size: int | None) -> np.ndarray:
    try:
        img = Image.open(path)
        img.load()
    except OSError as exc:
        raise InputError(path, f"not a readable image ({exc})") from exc
    if img.mode in ("RGBA", "LA", "P"):
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    img = img.convert("RGB")
    if size and img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    return np.array(img)


def _load_mask(path: Path | None, size: int) -> np.ndarray:
    if path is None:
        return np.zeros((size, size), bool)
    m = Image.open(path).convert("L")
    if m.size != (size, size):
        m = m.resize((size, size), Image.NEAREST)
    return np.array(m) > 127


def _kind(tag: str, subdir: str, info: dict) -> str | None:
    if tag.startswith("normal"):
        return "normal"
    for cand in (info.get("anomaly_type"), tag.removeprefix("anomaly").strip("_").split("_")[0], subdir):
        if cand in ANOMALY_CODES and cand != "normal":
            return cand
    return None


def _find(ann: dict[str, Path], stem: str, kind: str) -> Path | None:
    return next((ann[s] for s in annotation_candidates(stem, kind) if s in ann), None)


def import_official(folder: Path, dataset: Path, resolution: int | None = None, shard_size: int = 256) -> dict:
    from brokenchairs.dataset.cameras import Viewpoint, camera_for, intrinsics

    folder, dataset = Path(folder), Path(dataset)
    images = sorted((folder / "images").rglob("render_*.png")) + sorted((folder / "images").rglob("render_*.jpg"))
    if not images:
        raise InputError(folder / "images", "no render_*.png images: not a BrokenChairs-180K folder")
    ann: dict[str, Path] = {}
    for p in (folder / "annotations").rglob("*") if (folder / "annotations").is_dir() else []:
        ann[p.stem] = p
    notes: dict[str, int] = defaultdict(int)
    res = resolution or Image.open(images[0]).size[0]
    if res % 8:
        raise InputError(images[0], f"resolution {res} is not divisible by 8: pass --resolution")
    samples, shard_names, shapes_seen = [], [], []
    skipped = 0

    def flush():
        if samples:
            name = f"queries-{len(shard_names):05d}.h5"
            lines = [json.dumps({"sample_id": s.sample_id, "shape_id": s.shape_id, "unit_id": s.unit_id,
                                 "label": s.label, "anomaly_type": s.anomaly_type, "part_path": s.part_path,
                                 "shard": name, "row": r, "material_id": s.material_id}, sort_keys=True)
                     for r, s in enumerate(samples)]
            write_query_shard(dataset / "shards" / name, samples, lines, {"resolution": res, "imported_from": str(folder)})
            shard_names.append(name)
            samples.clear()

    for path in images:
        m = NAME.match(path.stem)
        if not m:
            notes["file names not in the release's pattern (skipped)"] += 1
            skipped += 1
            continue
        info_path = _find(ann, path.stem, "info")
        info = json.loads(info_path.read_text()) if info_path else {}
        if not info_path:
            notes["images without info json (camera from the file name)"] += 1
        kind = _kind(m["tag"], path.parent.name, info)
        if kind is None:
            notes["anomaly images of unknown type (skipped)"] += 1
            skipped += 1
            continue
        src = Image.open(path).size[0]
        if src != res:
            notes[f"images of {src}px resized to {res}px"] += 1
        image = _load_rgb(path, res)
        new_path, old_path = _find(ann, path.stem, "mask_new"), _find(ann, path.stem, "mask_old")
        new = _load_mask(new_path, res) if kind != "normal" else np.zeros((res, res), bool)
        old = _load_mask(old_path, res) if kind != "normal" else np.zeros((res, res), bool)
        if kind != "normal" and new_path is None:
            notes[f"{kind} images without mask_new (empty mask)"] += 1
        box = bbox_of(new | old)
        if kind != "normal" and np.isnan(box).any() and info.get("2d_bbox"):
            x, y, w, h = (v * res / BOX_FRAME for v in info["2d_bbox"])
            box = np.array([x, y, x + w, y + h], np.float32)
        az = float(info["azimuth_rad"]) if "azimuth_rad" in info else math.radians(float(m["azim"]))
        el = float(info["elevation_rad"]) if "elevation_rad" in info else math.radians(float(m["elev"]))
        K = np.array(info["K"], float) * np.array([[res / src] * 3, [res / src] * 3, [1, 1, 1]]) if "K" in info \
            else intrinsics(res)
        w2c = from_release_rt(info["RT"]) if "RT" in info else camera_for(Viewpoint(az, el, float(m["radius"])), np.zeros(3))
        obj = (image < 250).any(-1) | new
        sid = info.get("sample_id") or path.stem
        samples.append(QuerySample(sample_id=sid, shape_id=m["shape"], unit_id=f"{m['shape']}/{kind}", anomaly_type=kind,
                                   part_path=info.get("part_path", ""), image=image, object_mask=obj, mask_new=new,
                                   mask_old=old, bbox=box if kind != "normal" else np.full(4, np.nan, np.float32),
                                   depth=np.zeros((res, res), np.float32), K=K, world_to_cam=w2c, azimuth=az, elevation=el,
                                   light_id=int(m["light"]) if m["light"].isdigit() else 0,
                                   material_id=info.get("material_id") or m["tex"]))
        shapes_seen.append(m["shape"])  # one entry per imported image
        if len(samples) >= shard_size:
            flush()
    flush()
    if not shard_names:
        raise InputError(folder, "no importable images")
    notes["query depth (not in the release): zeros; object_mask: non-white pixels"] += 1
    view_shards, n_shapes = _import_views(folder, dataset, res, notes)
    shape_ids = list(dict.fromkeys(shapes_seen))
    split_file = folder / "split.json"
    splits = json.loads(split_file.read_text()) if split_file.is_file() else None

    def change(data: dict) -> dict:  # under the folder's lock (array members may share it)
        data.update(schema_version=SCHEMA_VERSION,
                    shapes=[{"shape_id": s, "kind": "mesh", "seed": 0, "index": 0, "path": "", "up": "z"} for s in shape_ids],
                    queries={"config": {"imported_from": str(folder.resolve()), "resolution": res}, "shards": shard_names,
                             "complete": False})
        if view_shards:
            data["views"] = {"config": {"imported_from": str(folder.resolve()), "resolution": res, "stride": 8},
                             "shards": view_shards}
        if splits:
            data["splits"] = {"shapes": {k: [str(s) for s in splits.get(k, [])] for k in ("train", "val", "test")}}
        return data

    update_dataset(dataset, change)
    from brokenchairs.generation.pipeline.generate import finish
    from brokenchairs.generation.units.tasks import QueryTask

    finish(dataset, [QueryTask(str(dataset / "shards" / n), ()) for n in shard_names])
    return {"images": len(shapes_seen), "skipped": skipped, "shapes": n_shapes,
            "notes": [f"{v} x {k}" if v > 1 else k for k, v in notes.items()]}


# --- reference views -------------------------------------------------------------------------------------
def _import_views(folder: Path, dataset: Path, res: int, notes: dict) -> tuple[dict, int]:
    shape_dirs = sorted(p for p in (folder / "shapes").glob("shape_*") if p.is_dir()) if (folder / "shapes").is_dir() else []
    sets = []
    for d in shape_dirs:
        pngs = sorted((d / "mv_images").glob("*.png"))
        if not pngs:
            notes["shape folders without mv_images (skipped)"] += 1
            continue
        vs, records = _read_shape_views(d.name.removeprefix("shape_"), pngs, d, res, notes)
        sets.append(vs)
        if records is not None:
            write_points(dataset, vs.shape_id, *records)
    if not sets:
        return {}, 0
    name = "views-00000.h5"
    write_view_shard(dataset / "shards" / name, sets, {"imported_from": str(folder)})
    return {name: [v.shape_id for v in sets]}, len(sets)


def _depth_file(png: Path, shape_dir: Path) -> Path | None:
    return next((p for p in (png.with_name(f"{png.stem}_depth.npy"), shape_dir / "mv_depth" / f"{png.stem}.npy")
                 if p.is_file()), None)


def _read_shape_views(shape_id: str, pngs: list[Path], shape_dir: Path, res: int,
                      notes: dict) -> tuple[ViewSet, tuple[np.ndarray, np.ndarray] | None]:
    gray, depth, Ks, rts, xyzs, valids, pxys, viss = [], [], [], [], [], [], [], []
    for png in pngs:
        img = Image.open(png).convert("L")
        src = img.size[0]
        gray.append(np.array(img.resize((res, res), Image.BILINEAR) if src != res else img))
        meta_path = next((p for p in (png.with_suffix(".json"), shape_dir / f"{png.stem}.json") if p.is_file()), None)
        if meta_path is None:
            raise InputError(png, "reference view without its .json (K, RT)")
        meta = json.loads(meta_path.read_text())
        K = np.array(meta["K"], float)
        K[:2] *= res / src
        Ks.append(K)
        npy = next((p for p in (png.with_suffix(".npy"), shape_dir / f"{png.stem}.npy") if p.is_file()), None)
        if npy is None:
            raise InputError(png, "reference view without its .npy (patch xyz)")
        rec = np.load(npy, allow_pickle=True)
        rec = rec.item() if rec.dtype == object else {"xyz": rec}
        if "xyz" not in rec:
            raise InputError(npy, "has no 'xyz' (render_multiview's create_pos3d_encoding adds it)")
        xyz = np.asarray(rec["xyz"], np.float32)
        valid = ~np.all(xyz == -1, axis=-1)
        rts.append(from_release_rt(meta["RT"], xyz[valid].mean(0) if valid.any() else None))
        xyzs.append(np.where(valid[..., None], xyz, 0).astype(np.float32))
        valids.append(valid)
        vis = np.asarray(rec.get("is_visible", np.zeros((0, 0))))
        if vis.ndim == 1:  # the release's per-point records (ours before were per cell: dropped)
            pxys.append(np.asarray(rec["pxy"], np.int64))
            viss.append(vis.astype(bool))
        elif vis.ndim == 2:
            notes["views with per-cell pxy/is_visible (our older exports: not kept)"] += 1
        dpath = _depth_file(png, shape_dir)
        if dpath is not None:
            d = np.load(dpath).astype(np.float32)
            depth.append(d if d.shape == (res, res) else np.array(Image.fromarray(d).resize((res, res), Image.NEAREST)))
        else:
            notes["views without depth: rebuilt per patch from xyz"] += 1
            depth.append(_patch_depth(xyz, valid, rts[-1], res))
    records = None
    if len(viss) == len(pngs) and len({v.shape for v in viss}) == 1:
        records = (np.stack(pxys), np.stack(viss))
    elif viss:
        notes["shapes whose views hold point records of different sizes (records dropped)"] += 1
    rts_a = np.stack(rts)
    centres = np.stack([-r[:3, :3].T @ r[:3, 3] for r in rts_a])
    az = np.arctan2(centres[:, 1], centres[:, 0]) % (2 * np.pi)
    el = np.arcsin(np.clip(centres[:, 2] / np.linalg.norm(centres, axis=1), -1, 1))
    vs = ViewSet(shape_id=shape_id, gray=np.stack(gray).astype(np.uint8), depth=np.stack(depth), K=np.stack(Ks),
                 world_to_cam=rts_a, azimuth=az, elevation=el, patch_xyz=np.stack(xyzs), patch_valid=np.stack(valids))
    return vs, records


def _patch_depth(xyz: np.ndarray, valid: np.ndarray, rt: np.ndarray, res: int) -> np.ndarray:
    z = (xyz.reshape(-1, 3) @ rt[:3, :3].T + rt[:3, 3])[:, 2].reshape(valid.shape)
    z = np.where(valid, z, 0).astype(np.float32)
    s = res // valid.shape[0]
    return np.kron(z, np.ones((s, s), np.float32))
