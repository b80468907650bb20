"""Read and write PartNet ``data_v0/<anno_id>/`` folders.

Layout: ``result_after_merging.json`` (preferred) or ``result.json`` -- a JSON list holding one
root node with ``text``, ``name``, ``id``, optional ``objs`` and ``children``; ``objs/<name>.obj``
triangle soups; ``meta.json`` (``model_cat``, ``model_id``, ``anno_id``). Files are y-up; the
loader converts to our z-up frame once and normalises (see ``shape.normalise``). Inner nodes of
``result_after_merging.json`` list the union of their subtree's ``objs``: meshes are taken from
leaves only. ``meta.json`` is optional (the folder name is then the shape id).

The procedural chairs are written by ``write_shape`` in exactly this layout (y-up), so both
sources share one loading path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.shape import PartNode, Shape, check_mesh, concat_meshes, normalise
from brokenchairs.shared_folder import write_atomic_folder

RESULT_FILES = ("result_after_merging.json", "result.json")

# PartNet (y up, front +z) -> ours (z up, front -y): a +90 degree rotation about x.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


# --- OBJ ---------------------------------------------------------------------------------------
def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (n,3) and triangles (m,3) of an OBJ file; polygons are fan-triangulated."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "mesh file is missing")
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read mesh file ({exc.__class__.__name__})") from exc
    if not text.strip():
        raise InputError(path, "mesh file is empty")
    verts: list[list[float]] = []
    tris: list[tuple[int, int, int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("v "):
            tok = line.split()
            try:
                verts.append([float(tok[1]), float(tok[2]), float(tok[3])])
            except (IndexError, ValueError) as exc:
                raise InputError(path, f"line {lineno}: bad vertex {line.strip()!r}") from exc
        elif line.startswith("f "):
            try:
                idx = [int(t.split("/")[0]) for t in line.split()[1:]]
            except ValueError as exc:
                raise InputError(path, f"line {lineno}: bad face {line.strip()!r}") from exc
            if len(idx) < 3:
                raise InputError(path, f"line {lineno}: face with fewer than 3 vertices")
            n = len(verts)
            idx = [i - 1 if i > 0 else n + i for i in idx]  # OBJ is 1-based; negatives are relative
            tris.extend((idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1))
    v = np.array(verts, dtype=np.float64).reshape(-1, 3)
    f = np.array(tris, dtype=np.int64).reshape(-1, 3)
    check_mesh(v, f, str(path))
    # PartNet part files often carry the whole model's vertex list: keep only referenced ones
    used, f = np.unique(f, return_inverse=True)
    return v[used], f.reshape(-1, 3)


def format_obj(vertices: np.ndarray, faces: np.ndarray) -> str:
    """Deterministic OBJ text (6 decimals), so the same geometry gives byte-identical files."""
    v = "\n".join(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices)
    f = "\n".join(f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces)
    return f"{v}\n{f}\n"


# --- loading -----------------------------------------------------------------------------------
def is_shape_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in RESULT_FILES)


def find_shape_dirs(root: str | Path) -> list[Path]:
    """Shape folders under ``root`` (``root`` itself if it is one), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "shape folder does not exist")
    if is_shape_dir(root):
        return [root]
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and is_shape_dir(p)), key=lambda p: p.name)
    if not dirs:
        raise InputError(root, f"missing {RESULT_FILES[0]} and {RESULT_FILES[1]}, and no shape folders inside")
    return dirs


def iter_shapes(root: str | Path) -> Iterator[Shape]:
    """Lazily load every shape under ``root``: one shape's meshes in memory at a time."""
    for d in find_shape_dirs(root):
        yield load_shape(d)


def read_tree(folder: str | Path) -> tuple[Path, dict]:
    """(path of the result JSON used, its root node): after-merging preferred, validated."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "shape folder does not exist")
    result = next((folder / n for n in RESULT_FILES if (folder / n).is_file()), None)
    if result is None:
        raise InputError(folder, f"missing {RESULT_FILES[0]} and {RESULT_FILES[1]}")
    try:
        tree = json.loads(result.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(result, f"not valid JSON ({exc})") from exc
    if not (isinstance(tree, list) and len(tree) == 1 and isinstance(tree[0], dict)):
        raise InputError(result, "not a PartNet tree (expected a JSON list holding one root node)")
    return result, tree[0]


def load_shape(folder: str | Path, normalize: bool = True) -> Shape:
    """Load one PartNet folder into our frame (z up), normalised unless ``normalize=False``."""
    folder = Path(folder)
    result, tree = read_tree(folder)
    meta = _read_meta(folder)
    root = _build_node(tree, folder, result)
    shape = Shape(str(meta.get("anno_id", folder.name)), root, meta)
    if not shape.parts():
        raise InputError(result, "the tree has no leaf with meshes")
    return normalise(shape) if normalize else shape


def _read_meta(folder: Path) -> dict:
    path = folder / "meta.json"
    if not path.is_file():
        return {"anno_id": folder.name, "source": str(folder)}
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(path, "expected a JSON object")
    return {**meta, "source": str(folder)}


def _build_node(raw: object, folder: Path, result: Path) -> PartNode:
    if not isinstance(raw, dict) or "id" not in raw or not ("name" in raw or "text" in raw):
        raise InputError(result, f"not a PartNet tree: node {str(raw)[:60]!r} lacks id/name")
    label = str(raw.get("name") or raw["text"])
    children = raw.get("children") or []
    if not isinstance(children, list):
        raise InputError(result, f"not a PartNet tree: 'children' of node {raw['id']} is not a list")
    if children:
        return PartNode(int(raw["id"]), label, [_build_node(c, folder, result) for c in children])
    objs = raw.get("objs") or []
    if not isinstance(objs, list) or not objs:
        raise InputError(result, f"leaf node {raw['id']} ({label}) lists no objs")
    meshes = []
    for name in objs:
        v, f = read_obj(folder / "objs" / f"{name}.obj")
        meshes.append((v @ Y_UP_TO_Z_UP.T, f))
    return PartNode(int(raw["id"]), label, [], concat_meshes(meshes))


# --- writing -----------------------------------------------------------------------------------
def write_shape(shape: Shape, folder: str | Path) -> Path:
    """Write ``shape`` as a PartNet folder (y up), atomically: a temp folder renamed at the end."""
    folder = Path(folder)
    with write_atomic_folder(folder) as tmp:
        (tmp / "objs").mkdir()
        obj_names: dict[int, str] = {}
        for k, part in enumerate(shape.parts()):
            name = f"new-{k}"
            obj_names[part.node_id] = name
            v = part.mesh.vertices @ Y_UP_TO_Z_UP  # inverse rotation
            (tmp / "objs" / f"{name}.obj").write_text(format_obj(v, part.mesh.faces))
        tree = [_node_json(shape.root, obj_names)]
        text = json.dumps(tree, separators=(", ", ": "))
        (tmp / "result_after_merging.json").write_text(text)
        (tmp / "result.json").write_text(text)
        meta = {k: v for k, v in shape.meta.items() if k != "source"}
        meta.setdefault("anno_id", shape.shape_id)
        meta.setdefault("model_cat", "Chair")
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1))
    return folder


def _node_json(node: PartNode, obj_names: dict[int, str]) -> dict:
    out: dict = {"text": node.label, "name": node.label, "id": node.id}
    if node.is_leaf:
        out["objs"] = [obj_names[node.id]]
    else:
        kids = [_node_json(c, obj_names) for c in node.children]
        out["objs"] = [o for k in kids for o in k["objs"]]  # union of the subtree, as PartNet does
        out["children"] = kids
    return out
