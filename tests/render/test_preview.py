"""Real Blender (bpy, Workbench) contact sheets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from brokenchairs.cli import main

pytestmark = pytest.mark.blender


def test_preview_renders_each_chair_with_label_colours(tmp_path, synth_dir):
    out = tmp_path / "sheet.png"
    res = CliRunner().invoke(main, ["shapes", "preview", str(synth_dir), "--out", str(out), "--n", "4",
                                    "--size", "64", "--columns", "2"])
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] == 128
    from brokenchairs.blender_scripts.preview import CAPTION_H
    for r in range(2):
        for c in range(2):
            tile = img[r * (64 + CAPTION_H): r * (64 + CAPTION_H) + 64, c * 64:(c + 1) * 64]
            assert (tile.min(axis=2) < 200).mean() > 0.03, "each tile shows a chair"


def test_preview_of_real_chairs(tmp_path, partnet_dir):
    out = tmp_path / "real.png"
    res = CliRunner().invoke(main, ["shapes", "preview", str(partnet_dir), "--out", str(out), "--size", "64"])
    assert res.exit_code == 0, res.output
    assert np.asarray(Image.open(out)).std() > 10


def test_preview_checks_every_shape_before_rendering(tmp_path, synth_dir):
    """A bad shape anywhere in the folder: one line naming its file, exit 2, no sheet."""
    shutil.copytree(synth_dir / "synth-7-00000", tmp_path / "chairs" / "a")
    shutil.copytree(synth_dir / "synth-7-00001", tmp_path / "chairs" / "b")
    obj = sorted((tmp_path / "chairs" / "b" / "objs").glob("*.obj"))[0]
    obj.write_text("")
    out = tmp_path / "out" / "sheet.png"
    res = CliRunner().invoke(main, ["shapes", "preview", str(tmp_path / "chairs"), "--out", str(out), "--size", "32"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(obj) in lines[0] and "mesh file is empty" in lines[0]
    assert not out.parent.exists()
