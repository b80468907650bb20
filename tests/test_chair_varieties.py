"""Chair varieties: a 'one-short' chair is its fixed twin less one optional member, recorded in each
shape ref so a dataset's chairs come back the same; fixed chairs read and write as before."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import trimesh
from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.generation.shapes.procedural import synth_chair
from brokenchairs.generation.shapes.shape import sample_surface
from brokenchairs.generation.shapes.sources import ShapeRef, load_ref, procedural_refs

SEED, COUNT = 11, 90
SINGLE = {"bar_stretcher", "seat_frame_bar", "back_surface_vertical_bar", "back_surface_horizontal_bar",
          "back_connector", "arm_sofa_style"}  # optional members left out one at a time
KEEP_ONE = {"back_connector", "back_surface_vertical_bar", "back_surface_horizontal_bar"}  # never the last one


def _pairs():
    return [(synth_chair(SEED, i), synth_chair(SEED, i, variety="one-short")) for i in range(COUNT)]


def test_a_one_short_chair_is_its_fixed_twin_less_one_optional_member():
    short, left_out = 0, Counter()
    for fixed, varied in _pairs():
        assert varied.meta["family"] == fixed.meta["family"] and varied.shape_id != fixed.shape_id
        kept = {p.node_id: p for p in varied.parts()}
        whole = {p.node_id: p for p in fixed.parts()}
        assert set(kept) <= set(whole)
        gone = [whole[i] for i in sorted(set(whole) - set(kept))]
        if gone:
            short += 1
            if not any(p.path[1] == "chair_back" for p in kept.values()):  # the whole back of an armless chair
                assert {p.path[1] for p in gone} == {"chair_back"}, [p.path_str for p in gone]
                assert not any(p.path[1] == "chair_arm" for p in kept.values())
                left_out["back"] += 1
            else:
                assert len(gone) == 1 and gone[0].label in SINGLE, (fixed.shape_id, [p.path_str for p in gone])
                label = gone[0].label
                if label in KEEP_ONE:
                    assert sum(p.label == label for p in whole.values()) >= 2
                left_out[label] += 1
        # the parts kept are the twin's, up to the one scale and shift of normalising the rest
        ids = sorted(kept)
        a = np.vstack([whole[i].mesh.vertices for i in ids])
        b = np.vstack([kept[i].mesh.vertices for i in ids])
        scale = np.linalg.norm(b - b.mean(0)) / np.linalg.norm(a - a.mean(0))
        np.testing.assert_allclose(b, (a - a.mean(0)) * scale + b.mean(0), atol=1e-6)
    assert 0.2 * COUNT < short < 0.5 * COUNT, short
    assert len(left_out) >= 5, left_out


def test_one_short_chairs_leave_no_member_floating():
    rng = np.random.default_rng(0)
    shorts = [v for f, v in _pairs() if len(v.parts()) < len(f.parts())][:12]
    for shape in shorts:
        parts = shape.parts()
        for i, p in enumerate(parts):
            rest = trimesh.util.concatenate([q.mesh for j, q in enumerate(parts) if j != i])
            pts = np.vstack([p.mesh.vertices, sample_surface(p.mesh, 400, rng)])
            others = np.vstack([rest.vertices, sample_surface(rest, 2000, rng)])
            gap = min(trimesh.proximity.closest_point(rest, pts)[1].min(), trimesh.proximity.closest_point(p.mesh, others)[1].min())
            assert gap < 0.005, (shape.shape_id, p.path_str, gap)


def test_refs_record_the_variety_and_fixed_refs_read_as_before():
    fixed, varied = procedural_refs(3, SEED)[2], procedural_refs(3, SEED, "one-short")[2]
    assert fixed.to_json() == {"shape_id": f"synth-{SEED}-00002", "kind": "procedural", "seed": SEED, "index": 2,
                               "path": "", "up": "z"}
    assert varied.to_json()["variety"] == "one-short"
    for ref in (fixed, varied):
        again = ShapeRef.from_json(json.loads(json.dumps(ref.to_json())))
        assert again == ref and load_ref(again).shape_id == ref.shape_id
    assert "variety" not in synth_chair(SEED, 2).meta


def test_the_cli_records_the_variety_in_dataset_json(tmp_path):
    out = tmp_path / "ds"
    res = CliRunner().invoke(main, ["plan", "--write", "--num-shapes", "3", "--chair-variety", "one-short",
                                    "--seed", str(SEED), "--out", str(out)])
    assert res.exit_code == 0, res.output
    shapes = json.loads((out / "dataset.json").read_text())["shapes"]
    assert [s["variety"] for s in shapes] == ["one-short"] * 3
    assert [load_ref(ShapeRef.from_json(s)).shape_id for s in shapes] == [r.shape_id for r in
                                                                         procedural_refs(3, SEED, "one-short")]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"num_shapes": 2, "chair_variety": "one-short"}))
    res = CliRunner().invoke(main, ["plan", "--write", "--config", str(cfg), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert {s["variety"] for s in json.loads((tmp_path / "c" / "dataset.json").read_text())["shapes"]} == {"one-short"}
    res = CliRunner().invoke(main, ["plan", "--num-shapes", "2", "--chair-variety", "lots", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--chair-variety" in res.output and not (tmp_path / "x").exists()
    res = CliRunner().invoke(main, ["shapes", "synth", "--count", "2", "--seed", str(SEED), "--chair-variety", "one-short",
                                    "--out", str(tmp_path / "chairs")])
    assert res.exit_code == 0, res.output
    assert sorted(d.name for d in (tmp_path / "chairs").iterdir()) == [r.shape_id for r in procedural_refs(2, SEED, "one-short")]
