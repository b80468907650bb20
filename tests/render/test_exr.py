"""The numpy OpenEXR reader against Blender's own loader, on files Blender writes."""

from __future__ import annotations

import numpy as np
import pytest

from brokenchairs.generation.render.exr import read_exr


def _write(path, pixels: np.ndarray, color_mode: str, depth: str, codec: str = "NONE") -> None:
    """Save (h, w, 4) float pixels (row 0 = top) as an EXR through Blender's image writer."""
    import bpy

    h, w = pixels.shape[:2]
    img = bpy.data.images.new("exr-test", w, h, alpha=True, float_buffer=True)
    img.pixels.foreach_set(np.ascontiguousarray(pixels[::-1], np.float32).ravel())  # Blender: bottom row first
    scene = bpy.context.scene
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth, settings.exr_codec = "OPEN_EXR", color_mode, depth, codec
    img.save_render(str(path), scene=scene)
    bpy.data.images.remove(img)


def _blender_read(path) -> np.ndarray:
    import bpy

    img = bpy.data.images.load(str(path))
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    return px.reshape(h, w, 4)[::-1]


@pytest.mark.blender
@pytest.mark.parametrize("color_mode,depth", [("RGB", "32"), ("RGBA", "32"), ("RGB", "16")])
def test_reader_equals_blenders_loader(tmp_path, color_mode, depth):
    from brokenchairs.blender_scripts import scene as sc

    sc.init_blender()
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 40, (13, 21, 4)).astype(np.float32)  # not square: rows and columns can't swap
    pixels[0, :, 0] = 1e9  # Blender's "no hit" depth survives
    path = tmp_path / "p.exr"
    _write(path, pixels, color_mode, depth)
    channels = read_exr(path)
    truth = _blender_read(path)
    assert sorted(channels) == sorted(color_mode)
    for k, name in enumerate(color_mode):
        assert channels[name].shape == (13, 21)
        assert channels[name].dtype == (np.float32 if depth == "32" else np.float16)
        np.testing.assert_array_equal(channels[name].astype(np.float32), truth[..., k])


@pytest.mark.blender
def test_render_passes_read_back_as_blender_wrote_them():
    """The pass files of a real render (one channel, "V"): the numpy reader gives Blender's pixels,
    top row first, background depth and all."""
    import bpy

    from brokenchairs.blender_scripts import scene as sc
    from brokenchairs.blender_scripts.passes import BLENDER_BACKGROUND_DEPTH, PassReader
    from brokenchairs.dataset.cameras import Viewpoint, camera_for, intrinsics

    sc.init_blender(1)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    bpy.ops.mesh.primitive_cube_add(size=0.6, location=(0.2, 0.0, 0.5))
    bpy.context.active_object.pass_index = 3
    sc.set_resolution(24, 24)
    sc.set_camera(intrinsics(24), camera_for(Viewpoint(0.3, 0.5), np.array([0.0, 0.0, 0.4])), 24, 24)
    reader = PassReader(("depth", "index"))
    sc.render(write_still=False)
    truth = {name: _blender_read(reader.dir / f"{name}.exr")[..., 0] for name in ("depth", "index")}
    got = reader.read()
    assert sorted(got) == ["depth", "index"] and not list(reader.dir.iterdir())  # read, then removed
    for name in got:
        assert got[name].dtype == np.float32 and got[name].shape == (24, 24)
        np.testing.assert_array_equal(got[name], truth[name])
    hit = got["index"] == 3
    assert hit.any() and (~hit).any()
    assert (got["depth"][~hit] >= BLENDER_BACKGROUND_DEPTH).all() and (got["depth"][hit] < 10).all()
    reader.close()


@pytest.mark.blender
def test_compressed_files_are_refused_with_the_file_named(tmp_path):
    from brokenchairs.blender_scripts import scene as sc

    sc.init_blender()
    path = tmp_path / "zip.exr"
    _write(path, np.ones((8, 8, 4), np.float32), "RGB", "32", codec="ZIP")
    with pytest.raises(ValueError, match=r"zip\.exr: compressed OpenEXR"):
        read_exr(path)


def test_other_files_are_refused_with_the_file_named(tmp_path):
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match=r"bad\.exr: not an OpenEXR file"):
        read_exr(bad)
    cut = tmp_path / "cut.exr"
    cut.write_bytes(b"\x76\x2f\x31\x01\x02\x00\x00\x00channels\0chlist\0")
    with pytest.raises(ValueError, match=r"cut\.exr"):
        read_exr(cut)
