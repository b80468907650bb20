"""Interop with the authors' release of BrokenChairs-180K (``import-official`` / ``export-official``).

Layout (as released; what we could not see in the release is marked "ours" and read leniently):
- ``images/<subdir>/render_<shape>_<texture>_<radius>_<azim>_<elev>_<light>_<normal|anomaly...>.png``;
  we write ``<subdir>`` = anomaly type, tag ``normal`` or ``anomaly_<type>``, azimuth/elevation in
  degrees, ``<texture>`` a short hash of our material id. On import, angles above 2*pi are degrees.
- ``annotations/<subdir>/info_<stem>.json``: ``2d_bbox`` [x, y, w, h] in pixels of a 512 frame,
  ``IoU`` (of mask_new and mask_old), ``K`` 3x3 (in the image's own pixels), ``RT`` 4x4
  world-to-camera (OpenCV), ``texture_id``; ours also ``sample_id``, ``anomaly_type``,
  ``part_path``, ``material_id``. ``mask_new_<stem>.png`` / ``mask_old_<stem>.png`` for anomalies
  (the release lacks mask_new for missing parts: imported as empty).
- ``shapes/shape_<id>/mv_images/<k>.png`` grayscale views with ``<k>.json`` (``K``, ``RT``
  world-to-camera, ``RT_`` camera-to-world) and ``<k>.npy`` (a pickled dict: ``xyz`` h x w x 3
  patch world points, -1 where empty; ``is_visible`` h x w; ``pxy`` h x w x 2 pixel positions).
  Ours also ``mv_depth/<k>.npy`` (camera-z depth); without it, depth is rebuilt per patch from
  ``xyz`` (coarse: VLFA's depth test then works at patch resolution).
- ``split.json``: {"train": [shape ids], "val": [...], "test": [...]}.
Imported query shards have no depth (zeros) and ``object_mask`` = non-white pixels (the
release has neither); a note says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from brokenchairs.errors import InputError
from brokenchairs.generation.dataset import read_dataset, update_dataset
from brokenchairs.generation.queries import ANOMALY_CODES, QuerySample, bbox_of
from brokenchairs.generation.shards import SCHEMA_VERSION, open_shard, read_view_group, write_query_shard, write_view_shard
from brokenchairs.generation.views import ViewSet

FRAME = 512  # 2d_bbox is given in a 512 x 512 frame
RADIUS = 2.5
NAME = re.compile(r"^render_(?P<shape>.+)_(?P<tex>[^_]+)_(?P<radius>-?[\d.]+)_(?P<azim>-?[\d.]+)_(?P<elev>-?[\d.]+)"
                  r"_(?P<light>[^_]+)_(?P<tag>normal.*|anomaly.*)$")


def _png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path)


def _texture(material_id: str) -> str:
    return "t" + hashlib.sha1(material_id.encode()).hexdigest()[:8]


# --- export -----------------------------------------------------------------------------------------
def export_official(dataset: Path, folder: Path) -> dict:
    dataset, folder = Path(dataset), Path(folder)
    data = read_dataset(dataset)
    if data is None or not (data.get("queries") or {}).get("shards"):
        raise InputError(dataset, "not a dataset folder with query shards")
    n_img, used = 0, set()
    for name in data["queries"]["shards"]:
        with open_shard(dataset / "shards" / name, "queries") as f:
            for i in range(len(f["label"])):
                n_img += _export_query(f, i, folder, used)
    shapes = 0
    for name in ((data.get("views") or {}).get("shards") or {}):
        with open_shard(dataset / "shards" / name, "views") as f:
            for sid in f:
                _export_views(read_view_group(f[sid]), folder / "shapes" / f"shape_{sid}")
                shapes += 1
    splits = (data.get("splits") or {}).get("shapes") or {}
    (folder / "split.json").write_text(json.dumps({k: splits.get(k, []) for k in ("train", "val", "test")}, indent=1))
    return {"images": n_img, "shapes": shapes}


def _export_query(f, i: int, folder: Path, used: set) -> int:
    dec = lambda x: x.decode() if isinstance(x, bytes) else str(x)  # noqa: E731
    manifest = json.loads(f["manifest"][i])
    kind, sid, shape = manifest["anomaly_type"], dec(f["sample_id"][i]), dec(f["shape_id"][i])
    mid = dec(f["material_id"][i])
    tag = "normal" if kind == "normal" else f"anomaly_{kind}"
    az, el = math.degrees(float(f["azimuth"][i])), math.degrees(float(f["elevation"][i]))
    stem = f"render_{shape}_{_texture(mid)}_{RADIUS}_{az:.2f}_{el:.2f}_{int(f['light_id'][i])}_{tag}"
    k = 1
    while stem + ("" if k == 1 else f"_{k}") in used:
        k += 1
    stem = stem + ("" if k == 1 else f"_{k}")
    used.add(stem)
    img_dir, ann_dir = folder / "images" / kind, folder / "annotations" / kind
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    image = f["image"][i]
    H, W = image.shape[:2]
    _png(img_dir / f"{stem}.png", image)
    new, old, box = f["mask_new"][i], f["mask_old"][i], f["bbox"][i]
    info = {"texture_id": _texture(mid), "material_id": mid, "sample_id": sid, "shape_id": shape, "anomaly_type": kind,
            "part_path": manifest.get("part_path", ""), "K": f["K"][i].tolist(), "RT": f["world_to_cam"][i].tolist(),
            "azimuth": az, "elevation": el, "radius": RADIUS, "light": int(f["light_id"][i]), "2d_bbox": None, "IoU": None}
    if kind != "normal":
        s = FRAME / W
        info["2d_bbox"] = [float(box[0] * s), float(box[1] * s), float((box[2] - box[0]) * s), float((box[3] - box[1]) * s)]
        union = (new | old).sum()
        info["IoU"] = float((new & old).sum() / union) if union else 0.0
        if new.any():
            _png(ann_dir / f"mask_new_{stem}.png", new.astype(np.uint8) * 255)
        _png(ann_dir / f"mask_old_{stem}.png", old.astype(np.uint8) * 255)
    (ann_dir / f"info_{stem}.json").write_text(json.dumps(info))
    return 1


def _export_views(vs: ViewSet, shape_dir: Path) -> None:
    mv, dd = shape_dir / "mv_images", shape_dir / "mv_depth"
    mv.mkdir(parents=True, exist_ok=True)
    dd.mkdir(parents=True, exist_ok=True)
    from brokenchairs.generation.cameras import project

    for k in range(vs.num_views):
        _png(mv / f"{k:03d}.png", vs.gray[k])
        rt = vs.world_to_cam[k]
        (mv / f"{k:03d}.json").write_text(json.dumps({"K": vs.K[k].tolist(), "RT": rt.tolist(),
                                                      "RT_": np.linalg.inv(rt).tolist()}))
        xyz = np.where(vs.patch_valid[k][..., None], vs.patch_xyz[k], -1.0).astype(np.float32)
        pxy, _ = project(vs.patch_xyz[k].reshape(-1, 3).astype(float), vs.K[k], rt)
        np.save(mv / f"{k:03d}.npy", {"xyz": xyz, "is_visible": vs.patch_valid[k].copy(),
                                      "pxy": pxy.reshape(*xyz.shape[:2], 2).astype(np.float32)}, allow_pickle=True)
        np.save(dd / f"{k:03d}.npy", vs.depth[k].astype(np.float32))


# --- import -----------------------------------------------------------------------------------------
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


def _angle(text: str) -> float:
    v = float(text)
    return math.radians(v) if abs(v) > 2 * math.pi + 1e-6 else v


def _kind(tag: str, subdir: str, info: dict) -> str | None:
    if tag.startswith("normal"):
        return "normal"
    for cand in (info.get("anomaly_type"), tag.removeprefix("anomaly").strip("_").split("_")[0], subdir):
        if cand in ANOMALY_CODES and cand != "normal":
            return cand
    return None


def import_official(folder: Path, dataset: Path, resolution: int | None = None, shard_size: int = 256) -> dict:
    from brokenchairs.generation.cameras import Viewpoint, camera_for, intrinsics

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
        info_path = ann.get(f"info_{path.stem}")
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
        new = _load_mask(ann.get(f"mask_new_{path.stem}"), res) if kind != "normal" else np.zeros((res, res), bool)
        old = _load_mask(ann.get(f"mask_old_{path.stem}"), res) if kind != "normal" else np.zeros((res, res), bool)
        if kind != "normal" and f"mask_new_{path.stem}" not in ann:
            notes[f"{kind} images without mask_new (empty mask)"] += 1
        box = bbox_of(new | old)
        if kind != "normal" and np.isnan(box).any() and info.get("2d_bbox"):
            x, y, w, h = (v * res / FRAME for v in info["2d_bbox"])
            box = np.array([x, y, x + w, y + h], np.float32)
        az, el = _angle(m["azim"]), _angle(m["elev"])
        K = np.array(info["K"], float) * np.array([[res / src] * 3, [res / src] * 3, [1, 1, 1]]) if "K" in info \
            else intrinsics(res)
        w2c = np.array(info["RT"], float) if "RT" in info else camera_for(Viewpoint(az, el, float(m["radius"])), np.zeros(3))
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

    def change(data: dict) -> dict:
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
    from brokenchairs.generation.generate import finish
    from brokenchairs.generation.plan import QueryTask

    finish(dataset, [QueryTask(str(dataset / "shards" / n), ()) for n in shard_names])
    return {"images": len(shapes_seen), "skipped": skipped, "shapes": n_shapes,
            "notes": [f"{v} x {k}" if v > 1 else k for k, v in notes.items()]}


def _import_views(folder: Path, dataset: Path, res: int, notes: dict) -> tuple[dict, int]:
    shape_dirs = sorted(p for p in (folder / "shapes").glob("shape_*") if p.is_dir()) if (folder / "shapes").is_dir() else []
    sets = []
    for d in shape_dirs:
        mv = d / "mv_images"
        pngs = sorted(mv.glob("*.png"))
        if not pngs:
            notes["shape folders without mv_images (skipped)"] += 1
            continue
        vs = _read_shape_views(d.name.removeprefix("shape_"), pngs, d, res, notes)
        sets.append(vs)
    if not sets:
        return {}, 0
    name = "views-00000.h5"
    write_view_shard(dataset / "shards" / name, sets, {"imported_from": str(folder)})
    return {name: [v.shape_id for v in sets]}, len(sets)


def _read_shape_views(shape_id: str, pngs: list[Path], shape_dir: Path, res: int, notes: dict) -> ViewSet:
    gray, depth, Ks, rts, xyzs, valids = [], [], [], [], [], []
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
        rts.append(np.array(meta["RT"], float))
        npy = next((p for p in (png.with_suffix(".npy"), shape_dir / f"{png.stem}.npy") if p.is_file()), None)
        if npy is None:
            raise InputError(png, "reference view without its .npy (patch xyz)")
        rec = np.load(npy, allow_pickle=True)
        rec = rec.item() if rec.dtype == object else {"xyz": rec}
        xyz = np.asarray(rec["xyz"], np.float32)
        valid = ~np.all(xyz == -1, axis=-1)
        xyzs.append(np.where(valid[..., None], xyz, 0).astype(np.float32))
        valids.append(valid)
        dpath = shape_dir / "mv_depth" / f"{png.stem}.npy"
        if dpath.is_file():
            depth.append(np.load(dpath).astype(np.float32))
        else:
            notes["views without depth: rebuilt per patch from xyz"] += 1
            depth.append(_patch_depth(xyz, valid, rts[-1], res))
    rts_a = np.stack(rts)
    centres = np.stack([-r[:3, :3].T @ r[:3, 3] for r in rts_a])
    az = np.arctan2(centres[:, 1], centres[:, 0]) % (2 * np.pi)
    el = np.arcsin(np.clip(centres[:, 2] / np.linalg.norm(centres, axis=1), -1, 1))
    return ViewSet(shape_id=shape_id, gray=np.stack(gray).astype(np.uint8), depth=np.stack(depth), K=np.stack(Ks),
                   world_to_cam=rts_a, azimuth=az, elevation=el, patch_xyz=np.stack(xyzs), patch_valid=np.stack(valids))


def _patch_depth(xyz: np.ndarray, valid: np.ndarray, rt: np.ndarray, res: int) -> np.ndarray:
    z = (xyz.reshape(-1, 3) @ rt[:3, :3].T + rt[:3, 3])[:, 2].reshape(valid.shape)
    z = np.where(valid, z, 0).astype(np.float32)
    s = res // valid.shape[0]
    return np.kron(z, np.ones((s, s), np.float32))

