"""Where shapes come from: procedural chairs, PartNet folders, or one custom mesh file.

A ``ShapeRef`` is a small, JSON-able handle that any worker process can turn into the same
``Shape``; plans and dataset.json store refs, never meshes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh

from brokenchairs.data_manifests.chair_varieties import CHAIR_VARIETIES, DEFAULT_VARIETY
from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.partnet import Y_UP_TO_Z_UP, find_shape_dirs, load_shape
from brokenchairs.generation.shapes.procedural import chair_id, synth_chair
from brokenchairs.generation.shapes.shape import PartNode, Shape, check_mesh, make_mesh, normalise

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")


@dataclass(frozen=True)
class ShapeRef:
    shape_id: str
    kind: str  # "procedural" | "partnet" | "mesh"
    seed: int = 0
    index: int = 0
    path: str = ""
    up: str = "z"
    variety: str = DEFAULT_VARIETY  # procedural chairs: data_manifests.chair_varieties

    def to_json(self) -> dict:
        d = asdict(self)
        if self.variety == DEFAULT_VARIETY:
            del d["variety"]  # a fixed chair's record reads as it did before chair varieties existed
        return d

    @staticmethod
    def from_json(d: dict) -> ShapeRef:
        return ShapeRef(**d)


def procedural_refs(count: int, seed: int, variety: str = DEFAULT_VARIETY) -> list[ShapeRef]:
    if variety not in CHAIR_VARIETIES:
        raise InputError(None, f"unknown chair variety {variety!r}; known: {', '.join(CHAIR_VARIETIES)}")
    return [ShapeRef(chair_id(seed, i, variety), "procedural", seed=seed, index=i, variety=variety) for i in range(count)]


def partnet_refs(root: str | Path) -> list[ShapeRef]:
    refs = []
    for d in find_shape_dirs(root):
        meta = d / "meta.json"
        anno = d.name
        if meta.is_file():
            try:
                anno = str(json.loads(meta.read_text()).get("anno_id", d.name))
            except json.JSONDecodeError as exc:
                raise InputError(meta, f"not valid JSON ({exc})") from exc
        refs.append(ShapeRef(anno, "partnet", path=str(d.resolve())))
    return refs


def mesh_ref(path: str | Path, up: str = "z") -> ShapeRef:
    path = Path(path)
    if up not in ("y", "z"):
        raise InputError(None, f"--up must be y or z, not {up!r}")
    return ShapeRef(path.stem, "mesh", path=str(path.resolve()), up=up)


def load_ref(ref: ShapeRef) -> Shape:
    if ref.kind == "procedural":
        return synth_chair(ref.seed, ref.index, variety=ref.variety)
    if ref.kind == "partnet":
        return load_shape(ref.path)
    if ref.kind == "mesh":
        return load_mesh_shape(ref.path, ref.up, ref.shape_id)
    raise ValueError(f"unknown shape source {ref.kind!r}")


def load_mesh_shape(path: str | Path, up: str = "z", shape_id: str | None = None) -> Shape:
    """A mesh file as a shape: one part per named geometry of a scene (GLB), else one part.

    ``up`` says which axis is up in the file (CAD and scans are often y-up); the result follows
    our conventions (z up, normalised).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "mesh file does not exist")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(path, f"unsupported mesh format; use one of {', '.join(MESH_SUFFIXES)}")
    try:
        loaded = trimesh.load(path, force=None, process=False)
    except Exception as exc:  # trimesh raises many types for bad files; report them all as bad input
        raise InputError(path, f"cannot load mesh ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(loaded, trimesh.Scene):
        meshes = [g for g in loaded.dump(concatenate=False) if isinstance(g, trimesh.Trimesh)]  # transforms applied
        items = [(g.metadata.get("name", f"part{i}"), g) for i, g in enumerate(meshes)]
    elif isinstance(loaded, trimesh.Trimesh):
        items = [("object", loaded)]
    else:
        items = []
    items = [(n, g) for n, g in items if len(g.faces)]
    if not items:
        raise InputError(path, "mesh file holds no triangles")
    root = PartNode(0, "object")
    for i, (name, g) in enumerate(sorted(items, key=lambda x: str(x[0]))):
        v = np.asarray(g.vertices, float)
        f = np.asarray(g.faces, np.int64)
        check_mesh(v, f, str(path))
        if up == "y":
            v = v @ Y_UP_TO_Z_UP.T
        label = str(name).split("_", 1)[1] if str(name).split("_", 1)[0].isdigit() and "_" in str(name) else str(name)
        root.children.append(PartNode(i + 1, label, [], make_mesh(v, f)))
    return normalise(Shape(shape_id or path.stem, root, {"source": str(path)}))
