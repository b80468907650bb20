"""Export a shape, or one part, to OBJ/GLB/PLY/STL with part names kept (one object per leaf)."""

from __future__ import annotations

from pathlib import Path

import trimesh

from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.shape import Shape
from brokenchairs.shared_folder import write_atomic

FORMATS = (".obj", ".glb", ".gltf", ".ply", ".stl")


def export_shape(shape: Shape, path: str | Path, node_id: int | None = None) -> Path:
    """Write the whole shape (a scene of named parts) or the leaf ``node_id`` to ``path``.

    Part objects are named ``<node id>_<label>``; their full label paths go into the scene
    metadata (GLB extras). Single-mesh formats (PLY, STL) get the concatenated shape.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InputError(path, f"unsupported export format; use one of {', '.join(FORMATS)}")
    parts = shape.parts() if node_id is None else [shape.part(node_id)]
    if path.suffix.lower() in (".ply", ".stl"):
        data = trimesh.util.concatenate([p.mesh for p in parts]).export(file_type=path.suffix[1:].lower())
    else:
        scene = trimesh.Scene()
        for p in parts:
            scene.add_geometry(p.mesh, node_name=p.name, geom_name=p.name)
        scene.metadata["part_paths"] = {p.name: p.path_str for p in parts}
        scene.metadata["shape_id"] = shape.shape_id
        data = scene.export(file_type=path.suffix[1:].lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, data)
