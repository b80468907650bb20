"""Interop with the released BrokenChairs-180K layout: our exporter's folder reads back equal through
the importer, and hand-made quirks of the release (missing masks, other resolutions, no info
json, no depth, stray files) are tolerated and reported."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brokenchairs.benchmark.data import DatasetIndex
from brokenchairs.cli import main

pytestmark = pytest.mark.blender


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


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    ds = root / "ds"
    _cli("generate", "--out", ds, "--num-shapes", "2", "--resolution", "32", "--samples", "1", "--views-per-variant", "2",
         "--seed", "4", "--split-ratios", "0.5,0,0.5")
    _cli("render-views", "--out", ds, "--resolution", "32", "--views", "4", "--workers", "1")
    _cli("export-official", ds, root / "release")
    return ds, root / "release"


def test_export_writes_the_release_layout(exported):
    ds, rel = exported
    imgs = sorted((rel / "images").rglob("render_*.png"))
    assert len(imgs) == len(_rows(ds))
    stem = next(p.stem for p in imgs if "anomaly_" in p.stem)
    kind = next(p.parent.name for p in imgs if p.stem == stem)
    info = json.loads((rel / "annotations" / kind / f"info_{stem}.json").read_text())
    assert {"2d_bbox", "IoU", "K", "RT", "texture_id"} <= set(info) and len(info["2d_bbox"]) == 4
    assert (rel / "annotations" / kind / f"mask_old_{stem}.png").is_file()
    shape_dir = next((rel / "shapes").glob("shape_*"))
    rec = np.load(shape_dir / "mv_images" / "000.npy", allow_pickle=True).item()
    assert rec["xyz"].shape == (4, 4, 3) and {"pxy", "is_visible"} <= set(rec)
    assert ((rec["xyz"] == -1).all(-1) == ~rec["is_visible"]).all()
    view = json.loads((shape_dir / "mv_images" / "000.json").read_text())
    np.testing.assert_allclose(np.array(view["RT"]) @ np.array(view["RT_"]), np.eye(4), atol=1e-9)
    split = json.loads((rel / "split.json").read_text())
    assert sorted(split["train"] + split["test"]) == sorted({r["shape_id"].decode() for r in _rows(ds).values()})


def test_import_of_an_export_gives_back_the_same_data(exported, tmp_path):
    ds, rel = exported
    _cli("import-official", rel, tmp_path / "back")
    a, b = _rows(ds), _rows(tmp_path / "back")
    assert set(a) == set(b)
    for sid, r in a.items():
        s = b[sid]
        np.testing.assert_array_equal(s["image"], r["image"])
        for k in ("label", "anomaly_type", "shape_id"):
            assert s[k] == r[k], k
        np.testing.assert_array_equal(s["mask_old"], r["mask_old"])
        np.testing.assert_array_equal(s["mask_new"], r["mask_new"])
        np.testing.assert_allclose(s["bbox"], r["bbox"], atol=1e-4)
        np.testing.assert_allclose(s["K"], r["K"])
        np.testing.assert_allclose(s["world_to_cam"], r["world_to_cam"])
    va, vb = _views(ds), _views(tmp_path / "back")
    assert set(va) == set(vb)
    for sid in va:
        for k in ("gray", "depth", "K", "world_to_cam", "patch_valid"):
            np.testing.assert_allclose(vb[sid][k], va[sid][k], atol=1e-6, err_msg=k)
        np.testing.assert_allclose(vb[sid]["azimuth"], va[sid]["azimuth"] % (2 * np.pi), atol=0.05)
    # the imported folder is a dataset like any other: splits from split.json, readable by the benchmark
    assert len(DatasetIndex.open(tmp_path / "back", "train,test")) == len(a)
    _cli("validate", tmp_path / "back")


def test_import_tolerates_the_releases_quirks(exported, tmp_path):
    _, rel = exported
    q = tmp_path / "quirky"
    shutil.copytree(rel, q)
    # missing-part anomalies come without mask_new
    for m in (q / "annotations").rglob("mask_new_*anomaly_missing*.png"):
        m.unlink()
    # one image at another resolution (64 instead of 32), one without its info json, one stray file
    imgs = sorted((q / "images").rglob("render_*anomaly_*.png"))
    big, bare = imgs[0], imgs[1]
    Image.open(big).resize((64, 64), Image.NEAREST).save(big)
    next((q / "annotations").rglob(f"info_{bare.stem}.json")).unlink()
    Image.new("RGB", (32, 32), "white").save(q / "images" / "normal" / "render_notes.png")
    # views without our depth extension
    for d in (q / "shapes").rglob("mv_depth"):
        shutil.rmtree(d)
    res = _cli("import-official", q, tmp_path / "imp", "--resolution", 32)
    assert "skipped" in res.output and "1 skipped" in res.output
    assert "without mask_new" in res.output or not list((rel / "annotations").rglob("mask_new_*anomaly_missing*"))
    assert "resized" in res.output and "camera from the file name" in res.output and "rebuilt per patch" in res.output
    rows = _rows(tmp_path / "imp")
    assert len(rows) == len(list(rel.rglob("render_*.png")))
    for r in rows.values():
        assert r["image"].shape == (32, 32, 3)
        if r["label"]:
            assert np.isfinite(r["bbox"]).all()
    views = _views(tmp_path / "imp")
    v = next(iter(views.values()))
    assert (v["depth"][0] > 0).any() and v["depth"].shape == (4, 32, 32)


def test_import_of_a_folder_without_images_exits_2(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    res = _cli("import-official", tmp_path / "empty", tmp_path / "out", code=2)
    assert "images" in res.output and "no render_" in res.output
