"""brokenchairs generate with real Cycles at 64x64: masks, boxes, depth, twins, determinism, bad input."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from brokenchairs.cli import main
from brokenchairs.data_manifests.anomaly_types import ANOMALY_CODES
from brokenchairs.generation.anomalies import AnomalyRecord, apply_record
from brokenchairs.dataset.cameras import unproject_depth
from brokenchairs.dataset.index import DatasetIndex
from brokenchairs.generation.render.materials.library import load_library, load_material
from brokenchairs.dataset.queries import bbox_of
from brokenchairs.generation.shapes.sources import load_ref, procedural_refs

pytestmark = pytest.mark.blender
ARGS = ["--num-shapes", "3", "--resolution", "64", "--samples", "2", "--views-per-variant", "3", "--seed", "5", "--twins",
        "--balance", "every-shape",
        "--shard-size", "12"]


def _generate(out, *extra):
    res = CliRunner().invoke(main, ["generate", "--out", str(out), *ARGS, *extra])
    assert res.exit_code == 0, res.output + res.stderr
    return out


def _load(out):
    rows = []
    for shard in sorted((out / "shards").glob("queries-*.h5")):
        with h5py.File(shard) as f:
            for i in range(len(f["label"])):
                rows.append({k: f[k][i] for k in f if k != "manifest"} | {"manifest": json.loads(f["manifest"][i])})
    return rows


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = _generate(tmp_path_factory.mktemp("gen") / "ds", "--workers", "1")
    return out, _load(out)


def test_every_type_is_present_and_manifest_matches(dataset):
    out, rows = dataset
    types = {int(r["anomaly_type"]) for r in rows}
    assert types >= {ANOMALY_CODES[k] for k in ("normal", "position", "rotation", "broken", "missing")}
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [x["sample_id"] for x in lines] == [r["sample_id"].decode() for r in rows]
    assert len({x["sample_id"] for x in lines}) == len(lines)
    assert json.loads((out / "dataset.json").read_text())["queries"]["complete"]


def test_masks_inside_object_and_box_is_the_anomalous_region(dataset):
    _, rows = dataset
    for r in rows:
        if r["label"] == 0:
            assert not r["mask_new"].any() and not r["mask_old"].any() and np.isnan(r["bbox"]).all()
            continue
        assert not (r["mask_new"] & ~r["object_mask"]).any()
        np.testing.assert_array_equal(r["bbox"], bbox_of(r["mask_new"] | r["mask_old"]))
        assert (r["mask_new"] | r["mask_old"]).sum() > 0


def test_missing_samples_have_only_mask_old(dataset):
    _, rows = dataset
    missing = [r for r in rows if r["anomaly_type"] == ANOMALY_CODES["missing"]]
    assert missing
    for r in missing:
        assert not r["mask_new"].any() and r["mask_old"].any()


def test_depth_unprojects_onto_the_rendered_part(dataset):
    _, rows = dataset
    refs = {r.shape_id: r for r in procedural_refs(3, 5)}
    checked = 0
    for r in rows:
        if r["label"] == 0 or not r["mask_new"].any():
            continue
        m = r["manifest"]
        shape = load_ref(refs[m["shape_id"]])
        variant = apply_record(AnomalyRecord.from_json(m["record"]), shape)
        part = variant.part(m["record"]["part_id"]).mesh
        pts = unproject_depth(r["depth"], r["K"], r["world_to_cam"])[r["mask_new"]]
        _, dist, _ = trimesh.proximity.closest_point(part, pts)
        assert np.median(dist) < 0.005, m["sample_id"]
        checked += 1
    assert checked >= 5


def test_twins_share_camera_materials_and_light(dataset):
    _, rows = dataset
    by_id = {r["sample_id"].decode(): r for r in rows}
    pairs = 0
    for r in rows:
        if r["label"] == 1:
            twin = by_id[r["manifest"]["twin"]]
            assert twin["label"] == 0 and twin["manifest"]["twin"] == r["sample_id"].decode()
            np.testing.assert_array_equal(twin["world_to_cam"], r["world_to_cam"])
            np.testing.assert_array_equal(twin["K"], r["K"])
            assert twin["material_id"] == r["material_id"] and twin["light_id"] == r["light_id"]
            assert (twin["image"] != r["image"]).any()
            pairs += 1
    assert pairs > 5


def test_index_leaves_twins_out_unless_asked_and_pairs_them_as_the_manifest_does(dataset):
    out, rows = dataset
    by_id = {r["sample_id"].decode(): r for r in rows}
    plain = DatasetIndex.open(out, "all", need_views=False)
    index = DatasetIndex.open(out, "all", need_views=False, twins=True)
    assert len(index) == len(rows) and len(plain) == len(rows) - sum(1 for r in rows if r["label"] == 1)
    assert not plain.twin_pairs()  # Table 1's balance: the twins are extra rows
    pairs = index.twin_pairs()
    assert len(pairs) == 2 * sum(r["label"] for r in rows)
    for i, root in pairs.items():
        q, anomalous = index.queries[i], index.queries[root]
        assert anomalous.label == 1
        if i != root:
            assert q.label == 0 and by_id[anomalous.sample_id]["manifest"]["twin"] == q.sample_id


def test_training_on_twin_pairs_logs_a_pair_loss(dataset, tmp_path):
    out, _ = dataset
    res = CliRunner().invoke(main, ["train", "--model", "resnet18-fpn", "--data", str(out), "--out", str(tmp_path / "run"),
                                    "--preset", "tiny", "--epochs", "1", "--set", "split=all", "--set", "val_split=",
                                    "--set", "twins=true", "--set", "pair_weight=1", "--set", "augment=true"])
    assert res.exit_code == 0, res.output + res.stderr
    with open(tmp_path / "run" / "metrics.csv") as f:
        pair = [float(r["pair"]) for r in csv.DictReader(f) if r["kind"] == "train"]
    assert pair and all(np.isfinite(pair)) and any(p > 0 for p in pair)


def test_images_look_like_chairs_on_white(dataset):
    _, rows = dataset
    for r in rows[:10]:
        bg = r["image"][~r["object_mask"]]
        assert np.median(bg) > 200  # white ground (shadows are darker, but few)
        assert r["image"][r["object_mask"]].std() > 3


def test_same_seed_same_shards_whatever_the_worker_count(dataset, tmp_path):
    out, rows = dataset
    other = _generate(tmp_path / "b", "--workers", "2", "--materials", str(out / "materials"))
    rows_b = _load(other)
    assert [r["sample_id"] for r in rows] == [r["sample_id"] for r in rows_b]
    for a, b in zip(rows, rows_b):
        for k in ("image", "mask_new", "mask_old", "bbox", "world_to_cam"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _png(path, color, size=8):
    Image.fromarray(np.full((size, size, 3), color, np.uint8)).save(path)


def test_materials_loader_reads_external_namings(tmp_path):
    a = tmp_path / "lib" / "oak_photoshape"
    a.mkdir(parents=True)
    for name in ("map_diffuse", "map_specular", "map_normal"):
        _png(a / f"{name}.png", 128)
    b = tmp_path / "lib" / "Leather012"
    b.mkdir()
    for name in ("Leather012_1K_Color", "Leather012_1K_Roughness", "Leather012_1K_NormalDX", "Leather012_1K_Metalness"):
        _png(b / f"{name}.jpg", 90)
    c = tmp_path / "lib" / "metal_plate"
    c.mkdir()
    for name in ("metal_plate_diff_1k", "metal_plate_rough_1k", "metal_plate_nor_gl_1k", "metal_plate_metal_1k"):
        _png(c / f"{name}.png", 200)
    lib = {m.name: m for m in load_library(tmp_path / "lib")}
    m = lib["oak_photoshape"]
    assert m.cls == "wood" and set(m.maps) == {"basecolor", "specular", "normal"} and not m.normal_dx
    m = lib["Leather012"]
    assert m.cls == "leather" and set(m.maps) == {"basecolor", "roughness", "normal", "metallic"} and m.normal_dx
    m = lib["metal_plate"]
    assert m.cls == "metal" and set(m.maps) == {"basecolor", "roughness", "normal", "metallic"} and not m.normal_dx


def test_materials_bad_input(tmp_path):
    from brokenchairs.errors import InputError

    d = tmp_path / "m"
    d.mkdir()
    _png(d / "roughness.png", 10)
    with pytest.raises(InputError, match="no base colour map"):
        load_material(d)
    (d / "basecolor.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="unreadable material map") as err:
        load_material(d)
    assert err.value.path == str(d / "basecolor.png")


@pytest.mark.parametrize("extra, message", [
    (["--anomaly", "melted"], "Invalid value for '--anomaly'"),
    (["--resolution", "60"], "not divisible by 8"),
    (["--resolution", "0"], "--resolution must be in 16..4096, got 0"),
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--samples", "0"], "Invalid value for '--samples'"),
    (["--config", "{config}"], "--samples must be in 1..65536, got 0"),  # a config file skips click's checks
    (["--shard-size", "0"], "Invalid value for '--shard-size'"),
    (["--split-ratios", "0.5,0.5,0.5"], "--split-ratios"),
    (["--views-per-variant", "21"], "Invalid value for '--views-per-variant'"),
    (["--num-shards", "2", "--shard-index", "2"], "--shard-index must be in 0..1"),
    (["--materials", "{bad_lib}"], "no base colour map"),
])
def test_generate_bad_input_writes_nothing(extra, message, tmp_path):
    """One line naming the option, exit 2, and the output folder never made (not even the material library)."""
    bad = tmp_path / "badlib" / "x"
    bad.mkdir(parents=True)
    (tmp_path / "config.json").write_text('{"samples": 0}')
    extra = [e.format(bad_lib=tmp_path / "badlib", config=tmp_path / "config.json") for e in extra]
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["generate", "--out", str(out), "--num-shapes", "1", "--resolution", "64", *extra])
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()


def test_generate_into_a_folder_of_another_dataset_adds_nothing(tmp_path):
    out = tmp_path / "views-only"
    (out / "shards").mkdir(parents=True)
    (out / "dataset.json").write_text('{"schema_version": 1, "shapes": [{"shape_id": "other", "kind": "procedural"}]}')
    res = CliRunner().invoke(main, ["generate", "--out", str(out), "--num-shapes", "1", "--resolution", "32"])
    assert res.exit_code == 2 and "other shapes" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "shards"]  # no material library written


def test_generate_refuses_a_folder_of_another_dataset(dataset, tmp_path):
    out, _ = dataset
    res = CliRunner().invoke(main, ["generate", "--out", str(out), *ARGS[:-2], "--seed", "6",
                                    "--materials", str(out / "materials")])
    assert res.exit_code == 2 and "another config" in res.stderr


def test_quality_control_runs_before_full_renders(dataset, tmp_path):
    """Without twins, no full-quality render is thrown away for an anomaly: QC runs on masks-only
    renders, so full renders = kept queries + the (rare) normal views cut by the frame."""
    from brokenchairs.generation.pipeline.generate import KINDS, GenerateConfig, generate

    out, _ = dataset
    cfg = GenerateConfig(anomalies=KINDS, views_per_variant=3, resolution=64, samples=2, seed=5, shard_size=12,
                         materials=str((out / "materials").resolve()))
    stats = generate(tmp_path / "qc", procedural_refs(3, 5), cfg, workers=1)
    qc_rejected = sum(v for k, v in stats.rejections.items() if not k.startswith(("rejected:3d", "rejected:anomaly_failed")))
    frame = stats.rejections.get("rejected:object_cut_by_frame", 0) + stats.rejections.get("rejected:object_too_small", 0)
    assert qc_rejected > frame  # some anomalous views were rejected: the property is exercised
    assert sum(stats.kept.values()) <= stats.images_rendered <= sum(stats.kept.values()) + frame
    assert stats.mask_renders >= 2 * sum(v for k, v in stats.kept.items() if k != "normal")
