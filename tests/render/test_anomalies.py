"""Anomaly engine: each type's geometric invariant, replay, determinism, perceptibility, bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.generation.anomalies import (
    AnomalyFailed,
    AnomalyRecord,
    DonorPool,
    apply_record,
    load_spec,
    make_anomaly,
)
from brokenchairs.generation.shapes.shape import PartNode, Shape, make_mesh, normalise
from brokenchairs.generation.shapes.sources import load_ref, partnet_refs, procedural_refs

SPEC = load_spec()
N_CHAIRS = 30


@pytest.fixture(scope="module")
def chairs():
    return [load_ref(r) for r in procedural_refs(N_CHAIRS, 21)]


@pytest.fixture(scope="module")
def pool():
    return DonorPool(procedural_refs(12, 99))


def soup_chair() -> Shape:
    """Hand-made triangle soups: an unwelded closed box (a leg) and an open plane (a back)."""
    box = trimesh.creation.box((0.1, 0.1, 0.8))
    soup_v = box.vertices[box.faces].reshape(-1, 3)  # every triangle has its own 3 vertices
    leg = make_mesh(soup_v + [0.3, 0.3, 0.4], np.arange(len(soup_v)).reshape(-1, 3))
    plane = trimesh.creation.box((0.8, 0.02, 0.6))
    keep = plane.face_normals[:, 1] < -0.5  # only the front face: an open surface
    back = make_mesh(plane.vertices + [0, 0.3, 1.1], plane.faces[keep])
    seat = trimesh.creation.box((0.8, 0.8, 0.08))
    root = PartNode(0, "chair", [
        PartNode(1, "chair_base", [PartNode(2, "leg", [], leg)]),
        PartNode(3, "chair_back", [PartNode(4, "back_single_surface", [], back)]),
        PartNode(5, "chair_seat", [PartNode(6, "seat_single_surface", [], make_mesh(seat.vertices + [0, 0, 0.8], seat.faces))]),
    ])
    return normalise(Shape("soup", root, {}))


def _changed(before: Shape, after: Shape) -> set[int]:
    a = {p.node_id: p.mesh for p in before.parts()}
    b = {p.node_id: p.mesh for p in after.parts()}
    return {k for k in a if k not in b or a[k] is not b[k]}


def _untouched_identical(before: Shape, after: Shape, part_id: int) -> None:
    b = {p.node_id: p.mesh for p in after.parts()}
    for p in before.parts():
        if p.node_id != part_id:
            assert p.mesh.vertices.tobytes() == b[p.node_id].vertices.tobytes()
            assert p.mesh.faces.tobytes() == b[p.node_id].faces.tobytes()


def test_position_moves_rigidly_by_at_least_the_minimum(chairs):
    lo = SPEC["position"]["offset"][0]
    for i, s in enumerate(chairs):
        new, rec = make_anomaly(s, "position", np.random.default_rng(i))
        assert _changed(s, new) == {rec.part_id}
        before, after = s.part(rec.part_id).mesh, new.part(rec.part_id).mesh
        shift = after.vertices - before.vertices
        assert np.allclose(shift, shift[0], atol=1e-12), "the part keeps its shape"
        assert np.linalg.norm(after.centroid - before.centroid) >= lo * s.diagonal - 1e-9
        _untouched_identical(s, new, rec.part_id)


def test_rotation_keeps_volume_and_centroid_and_turns_enough(chairs):
    lo = SPEC["rotation"]["angle_deg"][0]
    for i, s in enumerate(chairs):
        new, rec = make_anomaly(s, "rotation", np.random.default_rng(i))
        before, after = s.part(rec.part_id).mesh, new.part(rec.part_id).mesh
        assert after.volume == pytest.approx(before.volume, rel=1e-9)
        assert np.allclose(after.centroid, before.centroid, atol=1e-9)
        a = before.vertices - before.centroid
        b = after.vertices - after.centroid
        u, _, vt = np.linalg.svd(a.T @ b)  # Kabsch: the rotation that maps a onto b
        r = (u @ vt).T
        angle = np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))
        assert angle >= lo - 1e-6
        _untouched_identical(s, new, rec.part_id)


def test_broken_removes_enough_and_leaves_a_valid_mesh(chairs):
    lo = SPEC["broken"]["min_removed_fraction"]
    methods = set()
    for i, s in enumerate(chairs):
        new, rec = make_anomaly(s, "broken", np.random.default_rng(i))
        before, after = s.part(rec.part_id).mesh, new.part(rec.part_id).mesh
        methods.add(rec.metrics["method"])
        assert _changed(s, new) == {rec.part_id}
        assert after.is_watertight and after.is_winding_consistent  # procedural parts are solids
        assert 1 - after.volume / before.volume >= lo - 1e-6
        assert rec.metrics["removed_fraction"] == pytest.approx(1 - after.volume / before.volume, rel=1e-3)
        _untouched_identical(s, new, rec.part_id)
    assert methods == {"boolean"}


def test_broken_on_triangle_soups_repairs_or_falls_back():
    s = soup_chair()
    leg, back = s.parts()[0], s.parts()[1]
    new, rec = make_anomaly(s, "broken", np.random.default_rng(0), part_id=leg.node_id)
    assert rec.metrics["method"] == "boolean"  # welded, the soup box is a closed manifold
    assert new.part(leg.node_id).mesh.is_watertight
    new, rec = make_anomaly(s, "broken", np.random.default_rng(0), part_id=back.node_id)
    assert rec.metrics["method"] == "surface_cut"  # an open surface cannot be a solid
    after = new.part(back.node_id).mesh
    assert after.area < back.mesh.area * (1 - SPEC["broken"]["min_removed_fraction"]) + 1e-12


def test_broken_on_real_partnet_parts(partnet_dir):
    methods = set()
    for ref in partnet_refs(partnet_dir):
        s = load_ref(ref)
        new, rec = make_anomaly(s, "broken", np.random.default_rng(1))
        methods.add(rec.metrics["method"])
        assert _changed(s, new) == {rec.part_id} and rec.metrics["removed_fraction"] >= SPEC["broken"]["min_removed_fraction"]
    assert methods & {"boolean", "boolean_repaired"}


def _check_swapped(chairs, pool):
    for i, s in enumerate(chairs):
        new, rec = make_anomaly(s, "swapped", np.random.default_rng(i), pool=pool)
        donor = rec.params["donor"]
        assert donor["shape_id"] != s.shape_id
        assert rec.metrics["donor_path"].rsplit("/", 1)[1] == rec.part_path.rsplit("/", 1)[1]
        before, after = s.part(rec.part_id).mesh, new.part(rec.part_id).mesh
        np.testing.assert_allclose(after.bounds, before.bounds, atol=1e-9)
        assert rec.metrics["chamfer"] >= SPEC["swapped"]["min_chamfer"]
        _untouched_identical(s, new, rec.part_id)


def test_swapped_takes_a_same_label_part_of_another_chair_fitted_to_the_box(chairs, pool):
    _check_swapped(chairs[:12], pool)


def test_swapped_between_real_and_procedural_chairs(chairs, partnet_dir):
    real = partnet_refs(partnet_dir)
    _check_swapped(chairs[:6] + [load_ref(r) for r in real], DonorPool(procedural_refs(12, 99) + real))


def test_missing_removes_exactly_one_part(chairs):
    for i, s in enumerate(chairs):
        new, rec = make_anomaly(s, "missing", np.random.default_rng(i))
        assert len(new.parts()) == len(s.parts()) - 1
        assert rec.part_id not in {p.node_id for p in new.parts()}
        _untouched_identical(s, new, rec.part_id)


@pytest.mark.parametrize("kind", ["position", "rotation", "broken", "swapped", "missing"])
def test_records_replay_bit_for_bit_and_seeds_repeat(kind, chairs, pool):
    for i, s in enumerate(chairs[:8]):
        new, rec = make_anomaly(s, kind, np.random.default_rng(100 + i), pool=pool)
        rec2 = AnomalyRecord.from_json(json.loads(json.dumps(rec.to_json())))  # through JSON, as stored
        again = apply_record(rec2, s)
        new_b, rec_b = make_anomaly(s, kind, np.random.default_rng(100 + i), pool=pool)
        for x, y, z in zip(new.parts(), again.parts(), new_b.parts()):
            assert x.mesh.vertices.tobytes() == y.mesh.vertices.tobytes() == z.mesh.vertices.tobytes()
            assert x.mesh.faces.tobytes() == y.mesh.faces.tobytes() == z.mesh.faces.tobytes()
        assert rec.params == rec_b.params


def test_imperceptible_draws_are_rejected_and_counted(chairs):
    spec = copy.deepcopy(SPEC)
    spec["position"]["offset"] = [0.0005, 0.001]
    with pytest.raises(AnomalyFailed) as err:
        make_anomaly(chairs[0], "position", np.random.default_rng(0), spec)
    assert err.value.rejections == {"change_too_small": spec["perceptibility"]["max_attempts"]}
    spec = copy.deepcopy(SPEC)
    spec["rotation"]["angle_deg"] = [0.1, 0.2]
    with pytest.raises(AnomalyFailed):
        make_anomaly(chairs[0], "rotation", np.random.default_rng(0), spec)
    # and a perceptible draw records the rejections met before it
    _, rec = make_anomaly(chairs[3], "broken", np.random.default_rng(5))
    assert sum(rec.rejections.values()) == rec.attempts - 1


def _cli(*args):
    return CliRunner().invoke(main, ["anomalies", "apply", *map(str, args)])


def test_cli_writes_shape_and_record(tmp_path, synth_dir):
    res = _cli("--shape", synth_dir / "synth-7-00000", "--type", "missing", "--seed", 3, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    folder = next(tmp_path.iterdir())
    rec = json.loads((folder / "record.json").read_text())
    assert rec["type"] == "missing" and (folder / "result_after_merging.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--type", "melted"], "Invalid value for '--type'"),
    (["--type", "position", "--label", "propeller"], "no part labelled 'propeller'"),
    (["--type", "rotation", "--part", "999"], "no leaf part with id 999"),
    (["--type", "swapped", "--pool", "{empty_pool}"], "no part with a same-label donor"),
    (["--type", "broken", "--spec", "{bad_spec}"], "out of range"),
])
def test_cli_bad_input(args, message, tmp_path, synth_dir):
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    (pool_dir / "only").mkdir()
    (pool_dir / "only" / "result.json").write_text(json.dumps([{"id": 0, "name": "chair", "objs": ["x"]}]))
    bad = copy.deepcopy(SPEC)
    bad["broken"]["size"] = [0.6, 0.2]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    args = [a.format(empty_pool=pool_dir, bad_spec=tmp_path / "bad.json") for a in args]
    out = tmp_path / "out"
    res = _cli("--shape", synth_dir / "synth-7-00001", "--out", out, *args)
    assert res.exit_code == 2 and message in res.output + res.stderr
    assert not out.exists()


def test_a_tree_level_rotation_turns_a_whole_real_subtree_rigidly(partnet_dir):
    shape = load_ref(partnet_refs(partnet_dir)[0])  # 2320: office chair
    new, rec = make_anomaly(shape, "rotation", np.random.default_rng(0), level=2, label="star_leg_base")
    ids = shape.subtree_ids(rec.part_id)
    leaves = [p for p in shape.parts() if p.node_id in ids]
    assert len(leaves) > 10 and _changed(shape, new) == {p.node_id for p in leaves}
    rot = None
    for p in leaves:  # one rigid motion for the whole subtree
        a, b = p.mesh.vertices, new.part(p.node_id).mesh.vertices
        if rot is None:
            piv = np.asarray(rec.params["pivot"])
            rot = np.linalg.lstsq(a - piv, b - piv, rcond=None)[0]
        np.testing.assert_allclose((a - piv) @ rot, b - piv, atol=1e-9)
    replay = apply_record(AnomalyRecord.from_json(json.loads(json.dumps(rec.to_json()))), shape)
    assert all(x.mesh.vertices.tobytes() == y.mesh.vertices.tobytes() for x, y in zip(new.parts(), replay.parts()))


def test_tree_level_anomalies_remove_whole_subtrees_and_broken_takes_leaves_only(chairs):
    from brokenchairs.errors import InputError

    gone, rec = make_anomaly(chairs[0], "missing", np.random.default_rng(1), level=1, label="chair_back")
    assert not any(p.path[1] == "chair_back" for p in gone.parts())
    assert {p.node_id for p in gone.parts()} == {p.node_id for p in chairs[0].parts()} - chairs[0].subtree_ids(rec.part_id)
    with pytest.raises(InputError, match="leaf parts only"):
        make_anomaly(chairs[0], "broken", np.random.default_rng(0), level=1)
