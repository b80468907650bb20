"""Interop with the released BrokenChairs-180K layout.

The export is checked three ways: against the authors' own loader (``data/dataset_e2e.py`` from
github.com/VICO-UoE/Looking3D, loaded from ``$BROKENCHAIRS_LOOKING3D_SRC`` when set: never downloaded,
never copied here), against ``render_multiview.py``'s formulas for its files (written out below), and
through our importer (same data back; export of the import byte-identical). Queries are rendered at 32
and views at 256 (resampled and native paths), a copy has views at 64.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import random
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from brokenchairs.dataset.index import DatasetIndex
from brokenchairs.cli import main
from brokenchairs.errors import InputError
from brokenchairs.generation.interop.official import check_shape_id
from brokenchairs.generation.interop.official_points import surface_points, visible
from brokenchairs.dataset.shards import read_views
from brokenchairs.generation.shapes.sources import ShapeRef, load_ref

pytestmark = pytest.mark.blender
VIEWS = 6


def _cli(*args, code=0):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == code, res.output + repr(res.exception)
    return res


def _rows(root):
    meta = json.loads((root / "dataset.json").read_text())
    rows = {}
    for name in meta["queries"]["shards"]:
        with h5py.File(root / "shards" / name) as f:
            for i, sid in enumerate(f["sample_id"][()]):
                rows[sid.decode()] = {k: f[k][i] for k in ("image", "label", "anomaly_type", "bbox", "mask_new",
                                                            "mask_old", "K", "world_to_cam", "shape_id")}
    return rows


def _views(root):
    meta = json.loads((root / "dataset.json").read_text())
    out = {}
    for name in meta["views"]["shards"]:
        with h5py.File(root / "shards" / name) as f:
            for sid, g in f.items():
                out[sid] = {k: g[k][()] for k in g}
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _without_views(ds: Path, out: Path) -> Path:
    """A copy of a dataset with its queries only (views section and shards dropped)."""
    shutil.copytree(ds, out, ignore=shutil.ignore_patterns("views-*.h5"))
    meta = json.loads((out / "dataset.json").read_text())
    meta.pop("views")
    (out / "dataset.json").write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    ds = root / "ds"
    _cli("generate", "--out", ds, "--num-shapes", "3", "--resolution", "32", "--samples", "1", "--views-per-variant", "2",
         "--seed", "3", "--split-ratios", "0.34,0.33,0.33", "--workers", "1")
    _cli("render-views", "--out", ds, "--resolution", "256", "--views", VIEWS, "--workers", "1")
    _cli("export-official", ds, root / "release")
    return ds, root / "release"


@pytest.fixture(scope="module")
def exported_64(exported, tmp_path_factory):
    """The same queries with reference views rendered at 64 (resampled to the release's 256)."""
    ds, _ = exported
    root = tmp_path_factory.mktemp("official64")
    ds64 = _without_views(ds, root / "ds")
    _cli("render-views", "--out", ds64, "--resolution", "64", "--views", VIEWS, "--workers", "1")
    res = _cli("export-official", ds64, root / "release")
    assert "resampled from 32x32" in res.output
    return ds64, root / "release"


# --- the layout ---------------------------------------------------------------------------------------------
def test_export_writes_the_release_layout(exported):
    ds, rel = exported
    imgs = sorted((rel / "images").glob("*/*"))  # what the loader globs
    rows = _rows(ds)
    assert len(imgs) == len(rows) and all(p.name.startswith("render_") and p.suffix == ".png" for p in imgs)
    for p in imgs:
        assert Image.open(p).size == (256, 256)
        kind = p.parent.name
        rest = p.stem.removeprefix("render_")
        info = json.loads((rel / "annotations" / kind / f"info_{rest}.json").read_text())  # the loader's rule
        assert rest.split("_")[0] == info["shape_id"] and ("anomaly" in p.name) == (kind != "normal")
        if kind != "normal":
            x, y, w, h = info["2d_bbox"]
            assert 0 <= x < x + w <= 512 and 0 <= y < y + h <= 512 and 0 <= info["IoU"] <= 1
            assert (rel / "annotations" / kind / f"mask_old_{rest}.png").is_file()
            has_new = rows[info["sample_id"]]["mask_new"].any()
            assert (rel / "annotations" / kind / f"mask_new_{rest}.png").is_file() == has_new and not (has_new and kind == "missing")
    assert not list(rel.rglob("*_render_*"))
    shape_dirs = sorted((rel / "shapes").glob("shape_*"))
    assert len(shape_dirs) == 3
    for d in shape_dirs:
        pngs = sorted((d / "mv_images").glob("*.png"))
        assert len(pngs) == VIEWS
        recs = [np.load(p.with_suffix(".npy"), allow_pickle=True).item() for p in pngs]
        for p, rec in zip(pngs, recs):
            assert list(rec) == ["pxy", "is_visible", "xyz"]
            assert rec["pxy"].shape == (2000, 2) and rec["pxy"].dtype == np.int64
            assert rec["is_visible"].shape == (2000,) and rec["is_visible"].dtype == bool
            assert rec["xyz"].shape == (32, 32, 3) and rec["xyz"].dtype == np.float64
            on = (rec["xyz"] != -1).any(-1)
            assert on.any() and (rec["xyz"][~on] == -1).all()
            assert set(json.loads(p.with_suffix(".json").read_text())) == {"K", "RT", "RT_"}
            depth = np.load(p.with_name(f"{p.stem}_depth.npy"))
            assert depth.shape == (256, 256) and depth.dtype == np.float32 and (depth > 0).any()
            assert Image.open(p).mode == "L" and Image.open(p).size == (256, 256)
        # one point set per shape: every view sees some of the same points
        assert all(0 < r["is_visible"].mean() < 1 for r in recs)
    split = json.loads((rel / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted({r["shape_id"].decode() for r in rows.values()})
    assert all(split[k] for k in ("train", "val", "test"))


def _release_projection(cam: dict, points: np.ndarray) -> np.ndarray:
    """(row, col) of world points as render_multiview.py computes pxy (K @ RT, then (v, 256 - u)), unrounded."""
    P = np.array(cam["K"]) @ np.array(cam["RT"])[:3]
    xy = np.c_[points, np.ones(len(points))] @ P.T
    xy = xy[:, :2] / xy[:, 2:]
    return np.stack([xy[:, 1], 256 - xy[:, 0]], -1)


def _release_unprojection(cam: dict, depth: np.ndarray, pxy: np.ndarray) -> np.ndarray:
    """World points under pixels (row, col) from a _depth.npy and RT_ (an OpenGL camera pose, as pyrender's)."""
    K, (row, col) = np.array(cam["K"]), pxy.T
    d = depth[row, col].astype(float)
    x, y = (col + 0.5 - K[0, 2]) / K[0, 0] * d, -(row + 0.5 - K[1, 2]) / K[1, 1] * d
    return (np.c_[x, y, -d, np.ones_like(d)] @ np.array(cam["RT_"]).T)[:, :3]


@pytest.mark.parametrize("which,tolerance", [("exported", 4), ("exported_64", 8)])  # px; a feature cell is 8
def test_export_follows_render_multiviews_conventions(which, tolerance, request):
    """xyz cells, pxy (row, col), RT/RT_ and depth agree with each other under render_multiview's formulas."""
    _, rel = request.getfixturevalue(which)
    for d in sorted((rel / "shapes").glob("shape_*")):
        pngs = sorted((d / "mv_images").glob("*.png"))
        recs = [np.load(p.with_suffix(".npy"), allow_pickle=True).item() for p in pngs]
        cams = [json.loads(p.with_suffix(".json").read_text()) for p in pngs]
        depths = [np.load(p.with_name(f"{p.stem}_depth.npy")) for p in pngs]
        for rec, cam in zip(recs, cams):
            np.testing.assert_allclose(np.array(cam["RT"]) @ np.array(cam["RT_"]), np.eye(4), atol=1e-9)
            cells = np.argwhere((rec["xyz"] != -1).any(-1))
            rc = _release_projection(cam, rec["xyz"][cells[:, 0], cells[:, 1]])
            assert (np.floor(rc / 8) == cells).all()  # the cell of the point is the cell that holds it
            vis = rec["is_visible"]
            assert (np.abs(rec["pxy"][vis] - np.clip(rec["pxy"][vis], 0, 255)) == 0).all()
        within = []  # per view pair: share of co-visible points that land where the other view says
        for a, b in itertools.permutations(range(len(pngs)), 2):
            both = np.where(recs[a]["is_visible"] & recs[b]["is_visible"])[0]
            assert len(both) >= 32, "the loader needs 32 co-visible points for a view pair"
            seen = _release_projection(cams[b], _release_unprojection(cams[a], depths[a], recs[a]["pxy"][both]))
            within.append((np.abs(seen - recs[b]["pxy"][both]).max(1) <= tolerance).mean())
        assert min(within) > 0.85 and np.median(within) > 0.95, (d.name, min(within), np.median(within))


def test_depth_tested_visibility_agrees_with_ray_casts(exported):
    """render_multiview ray-casts each point; our depth test gives the same answer for most points."""
    ds, _ = exported
    meta = json.loads((ds / "dataset.json").read_text())
    ref = ShapeRef.from_json(meta["shapes"][0])
    shape = load_ref(ref)
    vs = read_views(ds / "shards" / next(iter(meta["views"]["shards"])), ref.shape_id)
    pts = surface_points(shape)
    caster = trimesh.ray.ray_triangle.RayMeshIntersector(shape.mesh())
    for k in (0, VIEWS // 2):
        eye = np.linalg.inv(vs.world_to_cam[k])[:3, 3]
        hit, ray, _ = caster.intersects_location(np.repeat(eye[None], len(pts), 0), pts - eye, multiple_hits=False)
        first = np.full(pts.shape, np.inf)
        first[ray] = hit
        truth = np.linalg.norm(first - pts, axis=1) < 1e-6
        ours = visible(pts, vs.depth[k], vs.K[k], vs.world_to_cam[k])
        assert (ours == truth).mean() > 0.9 and 0.1 < truth.mean() < 0.9


# --- the authors' loader -----------------------------------------------------------------------------------
def _authors_loader():
    src = os.environ.get("BROKENCHAIRS_LOOKING3D_SRC")
    if not src:
        pytest.skip("set BROKENCHAIRS_LOOKING3D_SRC to a checkout of github.com/VICO-UoE/Looking3D to run its loader")
    path = Path(src) / "data" / "dataset_e2e.py"
    if not path.is_file():
        pytest.skip(f"BROKENCHAIRS_LOOKING3D_SRC={src} holds no data/dataset_e2e.py")
    pytest.importorskip("albumentations", reason="the authors' loader needs albumentations (pip install albumentations)")
    pytest.importorskip("cv2", reason="the authors' loader needs OpenCV (pip install opencv-python-headless)")
    spec = importlib.util.spec_from_file_location("looking3d_dataset_e2e", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("which", ["exported", "exported_64"])
def test_the_authors_loader_reads_every_item(which, request):
    loader = _authors_loader()
    ds, rel = request.getfixturevalue(which)
    random.seed(0)
    np.random.seed(0)
    split = json.loads((rel / "split.json").read_text())
    for mode in ("train", "val", "test"):
        data = loader.dataloader(str(rel), num_mesh_images=5, mode=mode)
        expected = [p for p in (rel / "images").rglob("render_*.png") if p.stem.split("_")[1] in split[mode]]
        assert len(data) == len(expected) > 0
        for i in range(len(data)):
            for _ in range(3):  # each draw picks other views and augmentations
                item = data[i]
                assert item is not None, f"{mode} item {i} ({data.paths[i]}) did not load"
                name = os.path.basename(item["path"])
                assert item["mesh_pos_enc3d"].shape == (5, 32, 32, 3) and item["mesh_images"].shape == (5, 3, 256, 256)
                assert item["query_imgs"].shape == (3, 256, 256)
                assert item["labels"] == int("anomaly_" in name) == int(Path(item["path"]).parent.name != "normal")
                box = item["bbox"].numpy()
                if item["labels"]:
                    assert box.shape == (4,) and ((box >= 0) & (box <= 1)).all() and (box[2:] > 0).all()
                else:
                    assert (box == 0).all()
                assert item["pxy_v1"].shape == item["pxy_v2"].shape == (32, 2)
                assert ((item["pxy_v1"] >= 0) & (item["pxy_v1"] < 256)).all()


# --- our importer ---------------------------------------------------------------------------------------------
def test_import_of_an_export_gives_back_the_same_data(exported, tmp_path):
    ds, rel = exported
    _cli("import-official", rel, tmp_path / "back")
    a, b = _rows(ds), _rows(tmp_path / "back")
    assert set(a) == set(b)
    for sid, r in a.items():
        s = b[sid]
        for k in ("label", "anomaly_type", "shape_id"):
            assert s[k] == r[k], k
        # queries were rendered at 32 and exported at 256: masks and boxes scale exactly, pixels nearly
        np.testing.assert_array_equal(s["mask_old"][::8, ::8], r["mask_old"])
        np.testing.assert_array_equal(s["mask_new"][::8, ::8], r["mask_new"])
        np.testing.assert_allclose(s["bbox"], r["bbox"] * 8, atol=1e-4)
        small = np.array(Image.fromarray(s["image"]).resize((32, 32), Image.BOX), float)
        assert np.abs(small - r["image"]).mean() < 4
        np.testing.assert_allclose(s["K"], r["K"] * np.array([[8], [8], [1]]))
        np.testing.assert_allclose(s["world_to_cam"], r["world_to_cam"], atol=1e-12)
    va, vb = _views(ds), _views(tmp_path / "back")
    assert set(va) == set(vb)
    for sid in va:
        for k in ("gray", "depth", "K", "world_to_cam", "patch_valid", "patch_xyz"):
            np.testing.assert_allclose(vb[sid][k], va[sid][k], atol=1e-12, err_msg=k)
        np.testing.assert_allclose(vb[sid]["azimuth"], va[sid]["azimuth"] % (2 * np.pi), atol=0.05)
    # the imported folder is a dataset like any other: splits from split.json, readable by the benchmark
    assert len(DatasetIndex.open(tmp_path / "back", "train,val,test")) == len(a)
    _cli("validate", tmp_path / "back")


@pytest.mark.parametrize("which", ["exported", "exported_64"])
def test_export_of_an_import_is_byte_identical(which, request, tmp_path):
    _, rel = request.getfixturevalue(which)
    _cli("import-official", rel, tmp_path / "back")
    assert sorted(p.name for p in (tmp_path / "back" / "official-points").iterdir()) == \
        sorted(f"{d.name.removeprefix('shape_')}.npz" for d in (rel / "shapes").iterdir())
    _cli("export-official", tmp_path / "back", tmp_path / "again")
    first, again = _files(rel), _files(tmp_path / "again")
    assert sorted(first) == sorted(again)
    assert [k for k in first if first[k] != again[k]] == []


def _older_export(rel: Path, out: Path) -> Path:
    """Our layout before the release's names: info_render_/mask_*_render_ names, OpenCV RT, depth in mv_depth/,
    per-cell pxy/is_visible."""
    shutil.copytree(rel, out)
    for p in list((out / "annotations").rglob("*")):
        if p.is_file():
            kind, rest = next((k, p.name[len(k) + 1:]) for k in ("info", "mask_new", "mask_old") if p.name.startswith(k))
            p.rename(p.with_name(f"{kind}_render_{rest}"))
            if kind == "info":
                info = json.loads(p.with_name(f"{kind}_render_{rest}").read_text())
                info["RT"] = (np.diag([1.0, -1, -1, 1]) @ np.array(info["RT"])).tolist()
                p.with_name(f"{kind}_render_{rest}").write_text(json.dumps(info))
    for mv in (out / "shapes").rglob("mv_images"):
        (mv.parent / "mv_depth").mkdir()
        for js in mv.glob("*.json"):
            cam = json.loads(js.read_text())
            cv = np.diag([1.0, -1, -1, 1]) @ np.array(cam["RT"])
            js.write_text(json.dumps({"K": cam["K"], "RT": cv.tolist(), "RT_": np.linalg.inv(cv).tolist()}))
            rec = np.load(js.with_suffix(".npy"), allow_pickle=True).item()
            on = (rec["xyz"] != -1).any(-1)
            np.save(js.with_suffix(".npy"), {"xyz": rec["xyz"].astype(np.float32), "is_visible": on,
                                             "pxy": np.zeros((*on.shape, 2), np.float32)}, allow_pickle=True)
            (mv / f"{js.stem}_depth.npy").rename(mv.parent / "mv_depth" / f"{js.stem}.npy")
    return out


def test_import_reads_our_older_exports(exported, tmp_path):
    ds, rel = exported
    old = _older_export(rel, tmp_path / "old")
    _cli("import-official", rel, tmp_path / "new")
    res = _cli("import-official", old, tmp_path / "back")
    assert "without info json" not in res.output and "without depth" not in res.output
    a, b = _rows(tmp_path / "new"), _rows(tmp_path / "back")
    assert set(a) == set(b)
    for sid in a:
        for k in ("image", "label", "mask_new", "mask_old", "bbox", "K", "world_to_cam"):
            np.testing.assert_allclose(b[sid][k], a[sid][k], atol=1e-12, err_msg=k)
    va, vb = _views(tmp_path / "new"), _views(tmp_path / "back")
    for sid in va:
        for k in ("gray", "depth", "K", "world_to_cam", "patch_xyz"):
            np.testing.assert_allclose(vb[sid][k], va[sid][k], atol=1e-12, err_msg=k)
    # per-cell point records are not the release's: none kept, so a re-export has nothing to write them from
    assert not (tmp_path / "back" / "official-points").exists()
    res = _cli("export-official", tmp_path / "back", tmp_path / "again", code=2)
    assert "no mesh" in res.output and not (tmp_path / "again").exists()


def test_import_tolerates_the_releases_quirks(exported, tmp_path):
    _, rel = exported
    q = tmp_path / "quirky"
    shutil.copytree(rel, q)
    for m in (q / "annotations").rglob("mask_new_*anomaly_missing*.png"):
        m.unlink()
    # one image at another resolution (512), one without its info json, one stray file, one shape without depth
    imgs = sorted((q / "images").rglob("render_*anomaly_*.png"))
    big, bare = imgs[0], imgs[1]
    Image.open(big).resize((512, 512), Image.NEAREST).save(big)
    next((q / "annotations").rglob(f"info_{bare.stem.removeprefix('render_')}.json")).unlink()
    Image.new("RGB", (256, 256), "white").save(q / "images" / "normal" / "render_notes.png")
    for d in next((q / "shapes").iterdir()).rglob("*_depth.npy"):
        d.unlink()
    res = _cli("import-official", q, tmp_path / "imp", "--resolution", 64)
    assert "1 skipped" in res.output
    assert "resized" in res.output and "camera from the file name" in res.output and "rebuilt per patch" in res.output
    rows = _rows(tmp_path / "imp")
    assert len(rows) == len(list(rel.rglob("render_*.png")))
    for r in rows.values():
        assert r["image"].shape == (64, 64, 3)
        if r["label"]:
            assert np.isfinite(r["bbox"]).all()
    for v in _views(tmp_path / "imp").values():
        assert (v["depth"] > 0).any(axis=(1, 2)).all() and v["depth"].shape == (VIEWS, 64, 64)


def test_import_of_a_folder_without_images_exits_2(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    res = _cli("import-official", tmp_path / "empty", tmp_path / "out", code=2)
    assert "images" in res.output and "no render_" in res.output


# --- refusals ---------------------------------------------------------------------------------------------------
def test_export_refuses_what_the_authors_loader_cannot_read(exported, tmp_path):
    ds, _ = exported
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    res = _cli("export-official", ds, tmp_path / "full", code=2)
    assert "not empty" in res.output and len(res.output.strip().splitlines()) == 1
    bare = _without_views(ds, tmp_path / "bare")
    res = _cli("export-official", bare, tmp_path / "out", code=2)
    assert "render-views" in res.output and not (tmp_path / "out").exists()
    _cli("render-views", "--out", bare, "--resolution", "32", "--views", "1", "--workers", "1")
    res = _cli("export-official", bare, tmp_path / "out", code=2)
    assert "two different views" in res.output and not list(tmp_path.glob("out*"))
    for bad in ("a_b", "xanomalyx"):
        with pytest.raises(InputError, match="authors' loader"):
            check_shape_id(bad)
    check_shape_id("synth-3-00001")
