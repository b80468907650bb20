"""The object-region render: the rectangle holds every object pixel, masks/depth/box equal a
full-frame render of the same view, the ground outside comes from the low-res pass without seams."""

from __future__ import annotations

import numpy as np
import pytest

from brokenchairs.generation.cameras import bbox_center, camera_for, intrinsics, project, query_viewpoint
from brokenchairs.generation.queries import bbox_of
from brokenchairs.generation.render_region import composite_background, render_region
from brokenchairs.generation.sources import load_ref, procedural_refs


def test_region_contains_every_projected_vertex_with_a_margin():
    rng = np.random.default_rng(0)
    for ref in procedural_refs(6, 2):
        shape = load_ref(ref)
        pts = np.concatenate([p.mesh.vertices for p in shape.parts()])
        K, w2c = intrinsics(128), camera_for(query_viewpoint(rng), bbox_center(shape.bounds))
        x0, y0, x1, y1 = render_region(pts, K, w2c, 128)
        uv, _ = project(pts, K, w2c)
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
        lo, hi = uv.min(0), uv.max(0)
        assert (lo[0] - x0 >= 4 or x0 == 0) and (lo[1] - y0 >= 4 or y0 == 0)
        assert (x1 - hi[0] >= 4 or x1 == 128) and (y1 - hi[1] >= 4 or y1 == 128)
        assert (x1 - x0) * (y1 - y0) < 0.8 * 128 * 128  # the point: far less than the frame


def test_composite_keeps_the_region_and_fills_the_rest_from_the_background():
    rgb = np.full((64, 64, 3), 255, np.uint8)
    rgb[16:48, 16:48] = 100  # the rendered rectangle (object + its ground)
    bg_alpha = np.full((16, 16), 51.0)  # a uniform 20% shadow everywhere
    out = composite_background(rgb, (16, 16, 48, 48), bg_alpha, feather=4)
    assert (out[24:40, 24:40] == 100).all()  # deep inside: the full-quality render
    assert (np.abs(out[:8].astype(int) - 204) <= 1).all()  # outside: 255 * (1 - 0.2)
    inner = out[16:48, 16].astype(int)  # the feathered edge lies between the two
    assert ((inner >= 100) & (inner <= 205)).all()
    # a region touching the frame edge has no seam there
    out = composite_background(rgb, (0, 16, 48, 48), bg_alpha, feather=4)
    assert out[30, 0, 0] == rgb[30, 0, 0]


@pytest.mark.blender
def test_region_render_masks_depth_and_box_equal_the_full_frame(tmp_path):
    from brokenchairs.blender_scripts.query_scene import QueryRenderer
    from brokenchairs.generation.materials.assign import assign_materials
    from brokenchairs.generation.materials.library import load_library, synth_library

    list(synth_library(6, 0, tmp_path / "mats", 64))
    library = load_library(tmp_path / "mats")
    by_name = {m.name: m for m in library}
    res = 64
    r = QueryRenderer(res, 2, "cpu", 2, True)
    rng = np.random.default_rng(3)
    K = intrinsics(res)
    for ref in procedural_refs(3, 5):
        shape = load_ref(ref)
        index_of = {p.node_id: k + 1 for k, p in enumerate(shape.parts())}
        r.set_light(int(rng.integers(4)))
        r.set_parts(shape.parts(), index_of, assign_materials(shape, library, rng), by_name)
        w2c = camera_for(query_viewpoint(rng), bbox_center(shape.bounds))
        region = render_region(np.concatenate([p.mesh.vertices for p in shape.parts()]), K, w2c, res)
        full, crop = r.render(K, w2c), r.render(K, w2c, region=region)
        masks = r.render(K, w2c, region=region, masks_only=True)
        np.testing.assert_array_equal(crop["index"], full["index"])
        np.testing.assert_allclose(crop["depth"], full["depth"], rtol=1e-6, atol=1e-6)
        for k in np.unique(full["index"]):
            np.testing.assert_array_equal(bbox_of(crop["index"] == k), bbox_of(full["index"] == k))
        assert (masks["index"] > 0).sum() == pytest.approx((full["index"] > 0).sum(), rel=0.05)
        obj = full["index"] > 0
        diff = np.abs(crop["rgb"].astype(int) - full["rgb"].astype(int))
        assert np.median(diff[~obj]) <= 6  # the ground: same shadows, up to noise
        r.clear()


@pytest.mark.blender
def test_generate_with_render_region_writes_a_valid_dataset(tmp_path):
    from click.testing import CliRunner

    from brokenchairs.cli import main

    out = tmp_path / "ds"
    for args in (["generate", "--num-shapes", "2", "--resolution", "32", "--samples", "1", "--views-per-variant", "2",
                  "--render-region", "--workers", "1", "--out", str(out)],
                 ["render-views", "--out", str(out), "--resolution", "32", "--views", "4", "--workers", "1"],
                 ["validate", str(out)]):  # masks inside objects, boxes equal to the masks' boxes
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
