"""The shape model: a PartNet-style tree of semantic nodes whose leaves own triangle meshes.

Conventions (DESIGN.md): right-handed, z up; a normalised shape has a bounding-box diagonal of 1,
is centred in x/y and rests on z = 0. Loaded PartNet chairs face -y (their back is at +y).
Meshes are ``trimesh.Trimesh`` built with ``process=False`` so vertex arrays are kept exactly as
given (anomalies rely on untouched parts staying byte-identical).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import trimesh

from brokenchairs.errors import InputError


def make_mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """A mesh that keeps the given arrays as they are (no merging, no reordering)."""
    return trimesh.Trimesh(
        vertices=np.asarray(vertices, dtype=np.float64),
        faces=np.asarray(faces, dtype=np.int64),
        process=False,
        validate=False,
    )


def concat_meshes(meshes) -> trimesh.Trimesh:
    """One mesh from (vertices, faces) pairs or meshes, face indices offset, order kept."""
    pairs = [(m.vertices, m.faces) if isinstance(m, trimesh.Trimesh) else m for m in meshes]
    offsets = np.cumsum([0] + [len(v) for v, _ in pairs[:-1]])
    return make_mesh(np.concatenate([v for v, _ in pairs]), np.concatenate([f + o for (_, f), o in zip(pairs, offsets)]))


@dataclass
class PartNode:
    """A node of the part tree. Leaves own a mesh; inner nodes only group children."""

    id: int
    label: str
    children: list[PartNode] = field(default_factory=list)
    mesh: trimesh.Trimesh | None = None

    @property
    def is_leaf(self) -> bool:
        return not self.children


@dataclass(frozen=True)
class Part:
    """A leaf of a shape, seen with its label path from the root (e.g. chair/chair_base/...)."""

    node_id: int
    path: tuple[str, ...]
    mesh: trimesh.Trimesh

    @property
    def label(self) -> str:
        return self.path[-1]

    @property
    def path_str(self) -> str:
        return "/".join(self.path)

    @property
    def name(self) -> str:
        """A unique, readable object name: ``<node id>_<label>``."""
        return f"{self.node_id}_{self.label}"


@dataclass
class Shape:
    """A part-annotated shape. ``shape_id`` is the PartNet anno_id (or a procedural id)."""

    shape_id: str
    root: PartNode
    meta: dict = field(default_factory=dict)

    # --- traversal -------------------------------------------------------------------------
    def iter_nodes(self) -> Iterator[tuple[tuple[str, ...], PartNode]]:
        stack: list[tuple[tuple[str, ...], PartNode]] = [((self.root.label,), self.root)]
        while stack:
            path, node = stack.pop()
            yield path, node
            for child in reversed(node.children):
                stack.append((path + (child.label,), child))

    def parts(self) -> list[Part]:
        """Leaves in depth-first order (the order of the PartNet JSON)."""
        return [
            Part(node.id, path, node.mesh)
            for path, node in self.iter_nodes()
            if node.is_leaf and node.mesh is not None
        ]

    def part(self, node_id: int) -> Part:
        for p in self.parts():
            if p.node_id == node_id:
                return p
        raise KeyError(f"shape {self.shape_id} has no leaf with id {node_id}")

    def node(self, node_id: int) -> PartNode:
        for _, node in self.iter_nodes():
            if node.id == node_id:
                return node
        raise KeyError(f"shape {self.shape_id} has no node with id {node_id}")

    # --- whole-shape queries -----------------------------------------------------------------
    def mesh(self) -> trimesh.Trimesh:
        """All leaves concatenated into one mesh (parts may intersect)."""
        return concat_meshes(p.mesh for p in self.parts())

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) axis-aligned bounds of all leaves."""
        b = np.array([p.mesh.bounds for p in self.parts()])
        return np.stack([b[:, 0].min(axis=0), b[:, 1].max(axis=0)])

    @property
    def diagonal(self) -> float:
        lo, hi = self.bounds
        return float(np.linalg.norm(hi - lo))

    def sample_points(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Area-uniform surface samples: (points (count,3), node id of each point)."""
        parts = self.parts()
        areas = np.array([p.mesh.area for p in parts])
        per_part = rng.multinomial(count, areas / areas.sum())
        pts, ids = [], []
        for p, n in zip(parts, per_part):
            if n:
                pts.append(sample_surface(p.mesh, int(n), rng))
                ids.append(np.full(int(n), p.node_id))
        return np.concatenate(pts), np.concatenate(ids)

    # --- edits (return new shapes; untouched meshes are shared, never copied or changed) -----
    def subtree_ids(self, node_id: int) -> set[int]:
        node = self.node(node_id)
        ids, stack = set(), [node]
        while stack:
            n = stack.pop()
            ids.add(n.id)
            stack.extend(n.children)
        return ids

    def group_part(self, node_id: int) -> Part:
        """A node seen as one part: its path and the concatenated meshes of its leaves."""
        path = next(p for p, n in self.iter_nodes() if n.id == node_id)
        ids = self.subtree_ids(node_id)
        leaves = [p for p in self.parts() if p.node_id in ids]
        if not leaves:
            raise KeyError(f"node {node_id} of {self.shape_id} has no leaf meshes")
        if len(leaves) == 1 and leaves[0].node_id == node_id:
            return leaves[0]
        return Part(node_id, path, concat_meshes(leaf.mesh for leaf in leaves))

    def map_subtree(self, node_id: int, fn) -> Shape:
        """Apply ``fn(mesh) -> mesh`` to every leaf under ``node_id`` (the node itself if a leaf)."""
        ids = self.subtree_ids(node_id)
        return self._rebuild(lambda n: dataclasses.replace(n, mesh=fn(n.mesh)) if n.id in ids and n.mesh is not None else n)

    def with_part_mesh(self, node_id: int, mesh: trimesh.Trimesh) -> Shape:
        return self._rebuild(lambda n: dataclasses.replace(n, mesh=mesh) if n.id == node_id else n)

    def without_part(self, node_id: int) -> Shape:
        return self._rebuild(lambda n: None if n.id == node_id else n)

    def _rebuild(self, fn) -> Shape:
        def rec(node: PartNode) -> PartNode | None:
            new = fn(node)
            if new is None:
                return None
            kids = [c for c in (rec(k) for k in node.children) if c is not None]
            if node.children and not kids:
                return None  # an inner node whose last leaf went away goes too
            return dataclasses.replace(new, children=kids)

        root = rec(self.root)
        if root is None:
            raise ValueError(f"shape {self.shape_id}: the edit removed every part")
        return Shape(self.shape_id, root, dict(self.meta))


def sample_surface(mesh: trimesh.Trimesh, count: int, rng: np.random.Generator) -> np.ndarray:
    """Area-uniform points on a mesh surface drawn from ``rng`` (trimesh's sampler uses global state)."""
    tri = mesh.triangles
    area = mesh.area_faces
    face = rng.choice(len(tri), size=count, p=area / area.sum())
    u, v = rng.random((2, count))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[face]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def check_mesh(vertices: np.ndarray, faces: np.ndarray, source: str) -> None:
    """Raise InputError for meshes nothing downstream can use."""
    if len(faces) == 0:
        raise InputError(source, "mesh has no faces")
    if not np.isfinite(vertices).all():
        raise InputError(source, "mesh has NaN or infinite vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(source, f"face index out of range (mesh has {len(vertices)} vertices)")


def normalise(shape: Shape) -> Shape:
    """Scale to bounding-box diagonal 1, centre in x/y, rest on z = 0 (applied to every leaf)."""
    lo, hi = shape.bounds
    diag = float(np.linalg.norm(hi - lo))
    if not diag > 0:
        raise InputError(shape.meta.get("source"), "shape has zero extent")
    offset = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    return shape._rebuild(
        lambda n: dataclasses.replace(n, mesh=make_mesh((n.mesh.vertices - offset) / diag, n.mesh.faces))
        if n.mesh is not None
        else n
    )


def single_sided_faces(vertices: np.ndarray, faces: np.ndarray, decimals: int = 6) -> np.ndarray:
    """``faces`` without the second copy of any triangle over the same three points (either winding).

    ShapeNet-derived PartNet meshes are often "double-sided": every triangle twice, the copy with
    the opposite winding. A path tracer then hits either copy at random and shadow rays leaving
    one copy are blocked by the other (dark streaks of shadow acne, and extra noise). Rendering
    one copy changes no silhouette, mask or depth. Points are compared after rounding to
    ``decimals`` (the coordinates of a normalised shape are O(1)).
    """
    faces = np.asarray(faces)
    if len(faces) == 0:
        return faces
    corners = np.round(np.asarray(vertices, np.float64)[faces], decimals)  # (m, 3, 3)
    order = np.lexsort(corners.transpose(2, 0, 1)[::-1])  # sort each face's corners: x, then y, then z
    key = np.take_along_axis(corners, order[..., None], axis=1).reshape(len(faces), 9)
    _, first = np.unique(key, axis=0, return_index=True)
    return faces[np.sort(first)]
