"""Two-pass query rendering: the object's rectangle holds every object pixel; masks, depth and
boxes equal a full-frame render of the same view; the ground pass fills the rest; compositing in
linear light before denoising beats the single-pass render at equal cost."""

from __future__ import annotations

import numpy as np
import pytest

from brokenchairs.dataset.cameras import bbox_center, camera_for, intrinsics, project, query_viewpoints
from brokenchairs.dataset.queries import bbox_of
from brokenchairs.generation.render.render_region import FEATHER_PX, assemble, render_region, upsample_ground
from brokenchairs.generation.shapes.sources import load_ref, procedural_refs
from brokenchairs.generation.render.srgb import linear_to_srgb8, srgb8_to_linear


def test_region_contains_every_projected_vertex_with_a_margin():
    rng = np.random.default_rng(0)
    for ref in procedural_refs(6, 2):
        shape = load_ref(ref)
        pts = np.concatenate([p.mesh.vertices for p in shape.parts()])
        K, w2c = intrinsics(128), camera_for(query_viewpoints(rng, 1)[0], bbox_center(shape.bounds))
        x0, y0, x1, y1 = render_region(pts, K, w2c, 128)
        uv, _ = project(pts, K, w2c)
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
        lo, hi = uv.min(0), uv.max(0)
        # the margin (3 px) covers the pixel filter's reach (1.5 px, generation/render/coverage.py) with room to spare
        assert (lo[0] - x0 >= 2 or x0 == 0) and (lo[1] - y0 >= 2 or y0 == 0)
        assert (x1 - hi[0] >= 2 or x1 == 128) and (y1 - hi[1] >= 2 or y1 == 128)
        assert (x1 - x0) * (y1 - y0) < 0.8 * 128 * 128  # the point: far less than the frame


def test_srgb_round_trip_is_exact_on_every_8_bit_value():
    v = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(linear_to_srgb8(srgb8_to_linear(v)), v)
    assert srgb8_to_linear(np.array([128], np.uint8))[0] == pytest.approx(0.2158, abs=1e-3)  # not 0.5: light is linear


def test_ground_upsampling_is_in_linear_light_and_assembly_keeps_the_object_pass():
    flat = np.full((8, 8, 3), 200, np.uint8)
    np.testing.assert_allclose(upsample_ground(flat, 32), srgb8_to_linear(np.array([200], np.uint8))[0], atol=1e-5)
    step = np.full((8, 8, 3), 255, np.uint8)
    step[:, :4] = 0  # half shadow, half white
    up = upsample_ground(step, 64)
    mid = linear_to_srgb8(up[:, 30:34]).astype(int)
    # a mix of black and white in linear light is brighter in sRGB than the mix of their sRGB values
    assert mid.max() > 128 and (linear_to_srgb8(up[:, :20]) <= 1).all() and (linear_to_srgb8(up[:, 44:]) >= 254).all()
    obj = np.full((10, 20, 3), 7, np.uint8)
    out = assemble(up, (30, 5, 50, 15), obj)
    assert (out[5:15, 30:50] == 7).all()
    np.testing.assert_array_equal(out[20:], linear_to_srgb8(up[20:]))


def test_feather_keeps_the_object_pass_near_the_object_and_the_ground_pass_far_from_it():
    ground = np.full((40, 60, 3), srgb8_to_linear(np.array([230], np.uint8))[0], np.float32)
    obj = np.full((40, 60, 3), 200, np.uint8)  # the denoised crop: its ground a shade darker
    mask = np.zeros((40, 60), bool)
    mask[15:25, 20:30] = True
    out = assemble(ground, (0, 0, 60, 40), obj, mask)
    near, far = FEATHER_PX
    ys, xs = np.mgrid[:40, :60]
    # chessboard distance to the object (the feather's metric)
    d = np.maximum(np.maximum(np.maximum(15 - ys, ys - 24), 0), np.maximum(np.maximum(20 - xs, xs - 29), 0))
    np.testing.assert_array_equal(out[d <= near], obj[d <= near])  # the object and its edge: untouched
    assert (out[d >= far] == 230).all()  # far from it: exactly the ground pass, no seam at the rectangle
    mid = out[(d > near + 0.5) & (d < far - 0.5)][:, 0].astype(int)
    assert mid.size and (mid > 200).all() and (mid < 230).all()
    # a row leaving the object: the values rise monotonically from the object pass to the ground pass
    row = out[20, 29:].astype(int)[:, 0]
    assert (np.diff(row) >= 0).all() and row[0] == 200 and row[-1] == 230
    np.testing.assert_array_equal(assemble(ground, (0, 0, 60, 40), obj, np.zeros_like(mask)), linear_to_srgb8(ground))


def _scene(tmp_path, res: int, samples: int):
    from brokenchairs.blender_scripts.query_scene import QueryRenderer
    from brokenchairs.generation.render.materials.library import load_library, synth_library

    list(synth_library(6, 0, tmp_path / "mats", 64))
    library = load_library(tmp_path / "mats")
    return QueryRenderer(res, samples, "cpu", 2, True), library, {m.name: m for m in library}


def _psnr(a, b, mask):
    mse = ((a.astype(float) - b.astype(float)) ** 2)[mask].mean()
    return 10 * np.log10(255**2 / mse)


@pytest.mark.blender
def test_two_pass_masks_depth_and_box_equal_the_full_frame(tmp_path):
    from brokenchairs.blender_scripts.query_probes import render_single_pass, render_view
    from brokenchairs.blender_scripts.query_scene import SAMPLING_PATTERN
    from brokenchairs.generation.render.materials.assign import assign_materials
    from brokenchairs.generation.render.render_settings import OBJECT_SAMPLES

    res = 64
    r, library, by_name = _scene(tmp_path, res, 2)
    rng = np.random.default_rng(3)
    K = intrinsics(res)
    for ref in procedural_refs(3, 5):
        shape = load_ref(ref)
        index_of = {p.node_id: k + 1 for k, p in enumerate(shape.parts())}
        r.set_light(int(rng.integers(4)))
        r.set_parts(shape.parts(), index_of, assign_materials(shape, library, rng), by_name)
        w2c = camera_for(query_viewpoints(rng, 1)[0], bbox_center(shape.bounds))
        full, two = render_single_pass(r, K, w2c, 2, pattern=SAMPLING_PATTERN), render_view(r, K, w2c)
        masks = render_view(r, K, w2c, masks_only=True)
        r.samples = OBJECT_SAMPLES
        production = render_view(r, K, w2c)  # the index is written by each pixel's first sample, whatever the count
        r.samples = 2
        for out in (two, masks, production):
            np.testing.assert_array_equal(out["index"], full["index"])
        np.testing.assert_allclose(two["depth"], full["depth"], rtol=1e-6, atol=1e-6)
        assert set(masks) == {"index"}  # no image or depth is written for masks-only renders
        for k in np.unique(full["index"]):
            np.testing.assert_array_equal(bbox_of(two["index"] == k), bbox_of(full["index"] == k))
        x0, y0, x1, y1 = r.region(K, w2c)
        assert (x1 - x0) * (y1 - y0) < res * res  # the object pass covers less than the frame
        obj = full["index"] > 0
        diff = np.abs(two["rgb"].astype(int) - full["rgb"].astype(int))
        assert np.median(diff[~obj]) <= 6  # the ground: same shadows, up to noise
        r.clear()


@pytest.mark.blender
def test_a_renderers_first_image_equals_its_later_ones(tmp_path):
    """Cycles' blue-noise pattern depends on the largest sample count rendered so far; a primed
    renderer's first image (ground pass before any object pass) is the one it makes later too."""
    from brokenchairs.blender_scripts.query_probes import render_view
    from brokenchairs.generation.render.materials.assign import assign_materials

    r, library, by_name = _scene(tmp_path, 64, 6)
    shape = load_ref(procedural_refs(1, 4)[0])
    rng = np.random.default_rng(2)
    r.set_light(1)
    r.set_parts(shape.parts(), {p.node_id: k + 1 for k, p in enumerate(shape.parts())},
                assign_materials(shape, library, rng), by_name)
    K, target = intrinsics(64), bbox_center(shape.bounds)
    w2c, other = (camera_for(v, target) for v in query_viewpoints(rng, 2))
    first = render_view(r, K, w2c)["rgb"]
    render_view(r, K, other, masks_only=True)
    render_view(r, K, other)
    np.testing.assert_array_equal(render_view(r, K, w2c)["rgb"], first)


@pytest.mark.blender
def test_a_batch_of_views_renders_each_view_as_a_render_of_its_own(tmp_path):
    """``render_views`` runs every ground pass before any object pass (fewer scene re-syncs); each
    view's image, index and depth are those of ``render_view`` on that view alone, masks-only too."""
    from brokenchairs.blender_scripts.query_probes import render_view
    from brokenchairs.generation.render.materials.assign import assign_materials

    r, library, by_name = _scene(tmp_path, 64, 6)
    shape = load_ref(procedural_refs(1, 5)[0])
    rng = np.random.default_rng(3)
    r.set_light(0)
    r.set_parts(shape.parts(), {p.node_id: k + 1 for k, p in enumerate(shape.parts())},
                assign_materials(shape, library, rng), by_name)
    K, target = intrinsics(64), bbox_center(shape.bounds)
    cams = [camera_for(v, target) for v in query_viewpoints(rng, 3)]
    batch, masks = r.render_views(K, cams), r.render_views(K, cams, masks_only=True)
    assert len(batch) == len(masks) == 3 and r.render_views(K, []) == []
    for cam, b, m in zip(cams, batch, masks):
        alone = render_view(r, K, cam)
        assert set(b) == {"rgb", "index", "depth"} and (b["index"] > 0).any()
        for key in b:
            np.testing.assert_array_equal(b[key], alone[key])
        np.testing.assert_array_equal(m["index"], alone["index"])
    assert not np.array_equal(batch[0]["rgb"], batch[1]["rgb"])  # three views, not one three times


@pytest.mark.blender
def test_compositing_before_denoising_beats_the_single_pass_render(tmp_path):
    """Against a 256-spp reference, the production path at 16 spp is closer on the chair's
    silhouette pixels than Cycles' denoiser on a transparent 16-spp frame composited afterwards
    (which leaves the alpha's noise there), and no worse on the chair overall."""
    from scipy.ndimage import binary_erosion

    from brokenchairs.blender_scripts.query_probes import render_single_pass, render_view
    from brokenchairs.generation.render.materials.assign import assign_materials

    res = 128
    r, library, by_name = _scene(tmp_path, res, 16)
    rng = np.random.default_rng(1)
    K = intrinsics(res)
    gains = []
    for ref in procedural_refs(2, 7):
        shape = load_ref(ref)
        index_of = {p.node_id: k + 1 for k, p in enumerate(shape.parts())}
        r.set_light(0)
        r.set_parts(shape.parts(), index_of, assign_materials(shape, library, rng), by_name)
        w2c = camera_for(query_viewpoints(rng, 1)[0], bbox_center(shape.bounds))
        truth = render_single_pass(r, K, w2c, 256, seed=1)
        obj = truth["index"] > 0
        edge = obj & ~binary_erosion(obj)
        two = render_view(r, K, w2c)
        single = render_single_pass(r, K, w2c, 16, ("FAST", "FAST"))
        gains.append([_psnr(two["rgb"], truth["rgb"], m) - _psnr(single["rgb"], truth["rgb"], m) for m in (edge, obj)])
        r.clear()
    assert all(edge_gain > 0.75 and all_gain > 0.0 for edge_gain, all_gain in gains), gains
