from __future__ import annotations

import numpy as np
import trimesh

from brokenchairs.generation.shapes.export import export_shape
from brokenchairs.generation.shapes.procedural import synth_chair


def test_glb_keeps_part_names_paths_and_geometry(tmp_path):
    shape = synth_chair(0, 5)
    scene = trimesh.load(export_shape(shape, tmp_path / "c.glb"))
    assert sorted(scene.geometry) == sorted(p.name for p in shape.parts())
    assert scene.metadata["part_paths"] == {p.name: p.path_str for p in shape.parts()}
    assert np.allclose(scene.bounds, shape.bounds, atol=1e-6)


def test_obj_has_one_named_object_per_part_and_single_part_export(tmp_path):
    shape = synth_chair(0, 2)
    text = export_shape(shape, tmp_path / "c.obj").read_text()
    assert sorted(l[2:] for l in text.splitlines() if l.startswith("o ")) == sorted(p.name for p in shape.parts())
    leg = next(p for p in shape.parts() if p.label == "leg")
    mesh = trimesh.load(export_shape(shape, tmp_path / "leg.stl", leg.node_id))
    assert np.isclose(mesh.volume, leg.mesh.volume)
