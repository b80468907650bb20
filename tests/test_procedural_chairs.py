"""Procedural chairs: PartNet layout round trip, taxonomy, watertightness, contact, diversity."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
import trimesh

from brokenchairs.generation.shapes.inventory import taxonomy_paths
from brokenchairs.generation.shapes.partnet import find_shape_dirs, load_shape
from brokenchairs.generation.shapes.procedural import FAMILY_NAMES, synth_chair, synth_chairs
from brokenchairs.generation.shapes.shape import sample_surface


@pytest.fixture(scope="module")
def loaded(synth_dir):
    return [load_shape(d) for d in find_shape_dirs(synth_dir)]


def test_round_trip_keeps_parts_labels_and_geometry(synth_dir):
    for d in find_shape_dirs(synth_dir)[:10]:
        index = int(d.name.rsplit("-", 1)[1])
        made, read = synth_chair(7, index), load_shape(d)
        assert [p.path for p in made.parts()] == [p.path for p in read.parts()]
        for a, b in zip(made.parts(), read.parts()):
            assert a.node_id == b.node_id
            np.testing.assert_allclose(a.mesh.vertices, b.mesh.vertices, atol=2e-5)
            np.testing.assert_array_equal(a.mesh.faces, b.mesh.faces)


def test_labels_come_from_the_taxonomy(loaded):
    known = taxonomy_paths()
    for shape in loaded:
        for p in shape.parts():
            assert p.path_str in known, (shape.shape_id, p.path_str)


def test_leaves_are_watertight_with_positive_volume(loaded):
    for shape in loaded:
        for p in shape.parts():
            assert p.mesh.is_watertight and p.mesh.is_winding_consistent, (shape.shape_id, p.path_str)
            assert p.mesh.volume > 0


def test_normalised_frame(loaded):
    for shape in loaded:
        lo, hi = shape.bounds
        assert shape.diagonal == pytest.approx(1.0, abs=1e-6)
        assert lo[2] == pytest.approx(0.0, abs=1e-6)
        assert (lo[:2] + hi[:2]) == pytest.approx([0, 0], abs=1e-6)


def test_no_floating_parts(loaded):
    """Every part comes within 0.5% of the diagonal of the rest of the chair."""
    rng = np.random.default_rng(0)
    for shape in loaded[:20]:
        parts = shape.parts()
        for i, p in enumerate(parts):
            rest = trimesh.util.concatenate([q.mesh for j, q in enumerate(parts) if j != i])
            pts = np.vstack([p.mesh.vertices, sample_surface(p.mesh, 400, rng)])
            _, dist, _ = trimesh.proximity.closest_point(rest, pts)
            assert dist.min() < 0.005, (shape.shape_id, p.path_str, dist.min())


def test_family_diversity_and_part_counts(loaded):
    families = Counter(s.meta["family"] for s in loaded)
    assert len(families) >= 8 and set(families) <= set(FAMILY_NAMES)
    counts = [len(s.parts()) for s in loaded]
    assert np.median(counts) >= 8
    # continuous variation: no two chairs share their proportions
    extents = {tuple(np.round(s.bounds[1] - s.bounds[0], 4)) for s in loaded}
    assert len(extents) == len(loaded)


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(folder)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_files(tmp_path):
    list(synth_chairs(6, 3, tmp_path / "a"))
    list(synth_chairs(6, 3, tmp_path / "b"))
    list(synth_chairs(6, 4, tmp_path / "c"))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_chair_depends_only_on_seed_and_index(tmp_path):
    list(synth_chairs(2, 5, tmp_path / "a", start=3))
    list(synth_chairs(5, 5, tmp_path / "b"))
    assert _digest(tmp_path / "a" / "synth-5-00004") == _digest(tmp_path / "b" / "synth-5-00004")
