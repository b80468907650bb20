"""Exact silhouette coverage (generation/render/coverage.py): the union of the projected triangles under
Cycles' pixel filter, equal to the alpha Cycles' samples converge to."""

from __future__ import annotations

import numpy as np
import pytest

from brokenchairs.generation.render.coverage import FILTER_WIDTH_PX, coverage, filter_weights, merged_mesh, triangles_2d


def _square(x0, y0, x1, y1):
    return np.array([[[x0, y0], [x1, y0], [x1, y1]], [[x0, y0], [x1, y1], [x0, y1]]], float)


def _edge_coverage(offset: float) -> float:
    """Share of the 1D filter left of an edge ``offset`` px right of the pixel centre (fine quadrature)."""
    d = np.linspace(-FILTER_WIDTH_PX / 2, FILTER_WIDTH_PX / 2, 200001)
    x = 2 * np.pi * (d / FILTER_WIDTH_PX + 0.5)
    w = 0.35875 - 0.48829 * np.cos(x) + 0.14128 * np.cos(2 * x) - 0.01168 * np.cos(3 * x)
    return float(w[d < offset].sum() / w.sum())


def test_filter_weights_are_symmetric_normalised_and_peak_at_the_centre():
    w = filter_weights()
    assert w.sum() == pytest.approx(1.0) and np.allclose(w, w[::-1]) and (w >= 0).all()
    assert w.argmax() in (len(w) // 2 - 1, len(w) // 2)


def test_inside_outside_and_a_straight_edge_match_the_filter_integral():
    cov = coverage(_square(10.0, 4.0, 30.0, 40.0), (0, 0, 40, 44))
    assert cov.shape == (44, 40) and cov.dtype == np.float32
    np.testing.assert_allclose(cov[10:30, 13:27], 1.0, atol=1e-6)  # 1.5 px inside the edges: full
    assert (cov[:, :8] == 0).all() and (cov[:, 32:] == 0).all() and (cov[:2] == 0).all()
    # the edge x = 10 lies 0.5 px left of pixel 10's centre, 0.5 px right of pixel 9's
    row = cov[20]
    for x in (8, 9, 10, 11):
        assert row[x] == pytest.approx(1 - _edge_coverage(10.0 - (x + 0.5)), abs=0.01)
    assert row[9] + row[10] == pytest.approx(1.0, abs=0.01)  # the edge halfway between their centres


def test_overlaps_and_either_winding_give_the_union_not_a_sum():
    a = _square(5.0, 5.0, 20.3, 17.7)
    region = (0, 0, 30, 24)
    once = coverage(a, region)
    flipped = a[:, ::-1]  # the same triangles, clockwise
    np.testing.assert_array_equal(coverage(np.concatenate([a, flipped, a]), region), once)
    b = _square(12.1, 9.4, 26.0, 21.0)
    both = coverage(np.concatenate([a, b]), region)
    assert both.max() <= 1.0 + 1e-6 and (both >= np.maximum(once, coverage(b, region)) - 1e-6).all()


def test_degenerate_triangles_cover_nothing_and_regions_are_checked():
    line = np.array([[[1.0, 1.0], [9.0, 9.0], [5.0, 5.0]]])
    assert not coverage(line, (0, 0, 12, 12)).any()
    with pytest.raises(ValueError, match="empty region"):
        coverage(line, (5, 5, 5, 9))


def test_region_offsets_are_a_crop_of_the_frame():
    tri = np.array([[[3.3, 2.1], [27.8, 9.6], [11.2, 25.4]]])
    full = coverage(tri, (0, 0, 32, 32))
    np.testing.assert_allclose(coverage(tri, (6, 4, 20, 30)), full[4:30, 6:20], atol=1e-6)


def test_triangles_behind_the_camera_are_dropped():
    K = np.array([[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]])
    v = np.array([[0, 0, 2.0], [1, 0, 2.0], [0, 1, 2.0], [0, 0, -1.0]])
    tris = triangles_2d(v, np.array([[0, 1, 2], [0, 1, 3]]), K, np.eye(4))
    assert tris.shape == (1, 3, 2)
    np.testing.assert_allclose(tris[0, 1], [57.0, 32.0])


@pytest.mark.blender
@pytest.mark.parametrize("source", ["procedural", "real"])
def test_coverage_equals_the_alpha_cycles_samples_converge_to(tmp_path, request, source):
    """A procedural chair and a real PartNet chair: the exact coverage against a 512-spp Cycles alpha."""
    from brokenchairs.blender_scripts.query_probes import render_alpha
    from brokenchairs.blender_scripts.query_scene import QueryRenderer
    from brokenchairs.dataset.cameras import bbox_center, camera_for, intrinsics, query_viewpoints
    from brokenchairs.generation.render.materials.assign import assign_materials
    from brokenchairs.generation.render.materials.library import load_library, synth_library
    from brokenchairs.generation.shapes.sources import load_ref, partnet_refs, procedural_refs

    list(synth_library(3, 0, tmp_path / "mats", 32))
    library = load_library(tmp_path / "mats")
    by_name = {m.name: m for m in library}
    # the seed each chair had when one test rendered both
    ref, seed = ((procedural_refs(1, 3)[0], 0) if source == "procedural"
                 else (partnet_refs(request.getfixturevalue("partnet_dir"))[1], 1))
    r = QueryRenderer(96, 9, "cpu", 2, False)
    K = intrinsics(96)
    shape = load_ref(ref)
    rng = np.random.default_rng(seed)
    r.set_light(0)
    r.set_parts(shape.parts(), {p.node_id: k + 1 for k, p in enumerate(shape.parts())},
                assign_materials(shape, library, rng), by_name)
    w2c = camera_for(query_viewpoints(rng, 1)[0], bbox_center(shape.bounds))
    truth = render_alpha(r, K, w2c, 512)
    exact = coverage(triangles_2d(*merged_mesh(shape.parts()), K, w2c), (0, 0, 96, 96))
    few = render_alpha(r, K, w2c, 9)
    edge = (truth > 0.02) & (truth < 0.98)
    assert edge.sum() > 100, ref.shape_id
    err, err_few = np.abs(exact - truth)[edge].mean(), np.abs(few - truth)[edge].mean()
    assert err < 0.02 and err < err_few / 3, (ref.shape_id, err, err_few)
    assert np.abs(exact - truth).max() < 0.15, ref.shape_id
    r.clear()
