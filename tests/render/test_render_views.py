"""Reference views rendered by real Blender (Workbench) at 64x64: geometry of depth and patch xyz."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.dataset.cameras import bbox_center, eye_position, project, unproject_depth
from brokenchairs.generation.pipeline.reference_views import render_reference_views
from brokenchairs.generation.units.tasks import ViewsConfig
from brokenchairs.dataset.shards import is_complete, read_views
from brokenchairs.generation.shapes.sources import load_ref, partnet_refs, procedural_refs

pytestmark = pytest.mark.blender
CFG = ViewsConfig(views=6, resolution=64, elevation_deg=30.0)


def _render(out, refs):
    stats = render_reference_views(out, refs, CFG, workers=1, shard_size=1)
    assert stats.shapes == len(refs) and stats.shards_total == len(refs)
    return out, {r.shape_id: r for r in refs}


@pytest.fixture(scope="module")
def synth_views(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("views"), procedural_refs(2, 11))


@pytest.fixture(scope="module")
def real_views(tmp_path_factory, partnet_dir):
    return _render(tmp_path_factory.mktemp("real-views"),
                   [r for r in partnet_refs(partnet_dir) if r.shape_id in REAL])


def _views(dataset, shape_id):
    out, refs = dataset
    for shard in sorted((out / "shards").glob("views-*.h5")):
        with h5py.File(shard) as f:
            if shape_id in f:
                return read_views(shard, shape_id), load_ref(refs[shape_id])
    raise AssertionError(shape_id)


SYNTH, REAL = ["synth-11-00000", "synth-11-00001"], ["2320", "43872"]


@pytest.fixture(params=SYNTH + REAL)
def shape_views(request):
    """(views, shape) of one procedural or real chair."""
    return _views(request.getfixturevalue("real_views" if request.param in REAL else "synth_views"), request.param)


def test_depth_unprojects_onto_the_mesh(shape_views):
    vs, shape = shape_views
    mesh = shape.mesh()
    for i in range(vs.num_views):
        pts = unproject_depth(vs.depth[i], vs.K[i], vs.world_to_cam[i])
        pts = pts[vs.depth[i] > 0]
        assert len(pts) > 50
        _, dist, _ = trimesh.proximity.closest_point(mesh, pts[:: max(1, len(pts) // 300)])
        assert np.median(dist) < 0.002 and np.percentile(dist, 90) < 0.01, (i, np.median(dist))


def test_depth_is_consistent_across_views(shape_views):
    """Unproject view v, project into v+1: co-visible pixels agree (median error < 1% of the diagonal)."""
    vs, shape = shape_views
    for i in range(vs.num_views):
        j = (i + 1) % vs.num_views
        pts = unproject_depth(vs.depth[i], vs.K[i], vs.world_to_cam[i])[vs.depth[i] > 0]
        uv, z = project(pts, vs.K[j], vs.world_to_cam[j])
        px = np.floor(uv).astype(int)
        inside = (px >= 0).all(1) & (px < 64).all(1)
        d = vs.depth[j][px[inside, 1], px[inside, 0]]
        z = z[inside]
        covisible = (d > 0) & (z < d + 0.02)  # not occluded in view j
        assert covisible.mean() > 0.3
        assert np.median(np.abs(z[covisible] - d[covisible])) < 0.01 * shape.diagonal


def test_patch_xyz_on_surface_and_valid_is_the_silhouette(shape_views):
    vs, shape = shape_views
    mesh = shape.mesh()
    h = 64 // CFG.stride
    assert vs.patch_xyz.shape == (CFG.views, h, h, 3)
    silhouette = (vs.depth > 0).reshape(CFG.views, h, CFG.stride, h, CFG.stride).any(axis=(2, 4))
    np.testing.assert_array_equal(vs.patch_valid, silhouette)
    pts = vs.patch_xyz[vs.patch_valid]
    _, dist, _ = trimesh.proximity.closest_point(mesh, pts)
    assert np.percentile(dist, 95) < 0.005
    assert np.all(vs.patch_xyz[~vs.patch_valid] == 0)


def test_cameras_look_at_the_centre_from_the_stated_viewpoints(synth_views):
    vs, shape = _views(synth_views, "synth-11-00001")
    centre = bbox_center(shape.bounds)
    for v, view in enumerate(CFG.viewpoints()):
        assert vs.azimuth[v] == pytest.approx(view.azimuth) and vs.elevation[v] == pytest.approx(np.radians(30))
        uv, z = project(centre[None], vs.K[v], vs.world_to_cam[v])
        assert uv[0] == pytest.approx([32, 32], abs=1e-6) and z[0] == pytest.approx(2.5)
        eye = np.linalg.inv(vs.world_to_cam[v])[:3, 3]
        assert eye == pytest.approx(eye_position(view, centre))
    # the rendered silhouette is centred too (within a few pixels)
    ys, xs = np.nonzero(vs.gray[0] < 250)
    assert abs((xs.min() + xs.max()) / 2 - 32) < 8


def test_gray_views_are_shaded_gray_on_white(synth_views):
    vs, _ = _views(synth_views, "synth-11-00000")
    fg = vs.depth > 0
    from scipy.ndimage import binary_dilation

    near = binary_dilation(fg, structure=np.ones((1, 3, 3), bool))  # anti-aliased silhouette edges
    assert np.all(vs.gray[~near] >= 250)
    assert 60 < np.median(vs.gray[fg]) < 245 and vs.gray[fg].std() > 5


@pytest.mark.parametrize("source", ["synth", "real"])
def test_same_input_gives_identical_shards(source, request, tmp_path):
    """Both shapes in one shard (two workers offered) give the views of one shape a shard."""
    dataset = request.getfixturevalue(f"{source}_views")
    refs = dataset[1]
    render_reference_views(tmp_path, list(refs.values()), CFG, workers=2, shard_size=2)
    for sid in refs:
        a, b = _views(dataset, sid)[0], read_views(tmp_path / "shards" / "views-00000.h5", sid)
        for name in ("gray", "depth", "world_to_cam", "patch_xyz", "patch_valid"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{sid} {name}")


def test_cli_resumes_refuses_other_configs_and_bad_input(tmp_path):
    out = tmp_path / "ds"
    runner = CliRunner()
    args = ["render-views", "--num-shapes", "2", "--out", str(out), "--resolution", "32", "--views", "2",
            "--shard-size", "1", "--workers", "1"]
    assert runner.invoke(main, args).exit_code == 0
    shard = out / "shards" / "views-00001.h5"
    shard.write_bytes(shard.read_bytes()[:1000])  # a truncated shard is redone
    assert not is_complete(shard)
    res = runner.invoke(main, ["render-views", "--out", str(out), "--resolution", "32", "--views", "2",
                               "--shard-size", "1", "--workers", "1"])
    assert res.exit_code == 0 and "1 already complete" in res.output and is_complete(shard)
    res = runner.invoke(main, args[:-4] + ["--resolution", "64"])
    assert res.exit_code == 2 and "another config" in res.stderr
    for bad, msg in ((["--views", "0"], "--views must be in 1..360, got 0"), (["--resolution", "60"], "not divisible"),
                     (["--elevation", "90"], "--elevation must be between -90 and 90"),
                     (["--stride", "0"], "--stride must be at least 1"),
                     (["--num-shards", "3", "--shard-index", "3"], "--shard-index must be in 0..2")):
        res = runner.invoke(main, ["render-views", "--out", str(tmp_path / "x")] + bad)
        assert res.exit_code == 2 and msg in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    empty = tmp_path / "empty.obj"
    empty.write_text("")
    res = runner.invoke(main, ["render-views", "--mesh", str(empty), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and str(empty) in res.stderr
    assert not (tmp_path / "x").exists()


def test_custom_mesh_entry_point(tmp_path):
    box = trimesh.creation.box((0.4, 1.0, 0.3))  # y-up: tall along y
    box.export(tmp_path / "box.obj")
    res = CliRunner().invoke(main, ["render-views", "--mesh", str(tmp_path / "box.obj"), "--up", "y", "--out",
                                    str(tmp_path / "v"), "--views", "3", "--resolution", "32"])
    assert res.exit_code == 0, res.output
    vs = read_views(tmp_path / "v" / "shards" / "views-00000.h5", "box")
    pts = vs.patch_xyz[vs.patch_valid]
    assert pts[:, 2].max() == pytest.approx(1.0 / np.linalg.norm([0.4, 1.0, 0.3]), abs=0.02)  # y became z, normalised


VIEW_VALUES = {  # every ViewsConfig key: a value other than the default; the flag where one exists
    "views": (2, ["--views", "2"]), "elevation_deg": (20.0, ["--elevation", "20"]),
    "resolution": (24, ["--resolution", "24"]), "stride": (4, ["--stride", "4"]), "fov_deg": (30.0, None),
    "radius": (3.0, None),
}


@pytest.mark.parametrize("way", ["file", "set", "flag"])
def test_every_view_key_every_way_reads_back_from_dataset_json(way, tmp_path):
    import json
    from dataclasses import fields

    assert set(VIEW_VALUES) == {f.name for f in fields(ViewsConfig)}
    if way == "file":
        (tmp_path / "views.json").write_text(json.dumps({k: v for k, (v, _) in VIEW_VALUES.items()}))
        args, keys = ["--config", str(tmp_path / "views.json")], list(VIEW_VALUES)
    elif way == "set":
        args, keys = [a for k, (v, _) in VIEW_VALUES.items() for a in ("--set", f"{k}={v}")], list(VIEW_VALUES)
    else:
        keys = [k for k, (_, flag) in VIEW_VALUES.items() if flag]
        args = [a for k in keys for a in VIEW_VALUES[k][1]]
    out = tmp_path / "ds"
    res = CliRunner().invoke(main, ["render-views", "--num-shapes", "1", "--out", str(out), "--workers", "1", *args])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "dataset.json").read_text())["views"]["config"]
    for key in keys:
        assert saved[key] == VIEW_VALUES[key][0], (way, key)
    with h5py.File(next((out / "shards").glob("views-*.h5"))) as f:  # and the renders follow it
        g = next(iter(f.values()))
        v = VIEW_VALUES
        assert g["gray"].shape[:2] == (v["views"][0], v["resolution"][0])
        assert g["patch_xyz"].shape[1] == v["resolution"][0] // v["stride"][0]
