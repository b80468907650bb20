"""Boolean fractures (paper 3.1, "broken"): subtract a sphere or cube from a part.

Parts must be solids for a boolean. The chain, recorded as ``method``:
1. ``boolean``: weld coincident vertices; if that is a closed manifold, subtract with manifold3d;
2. ``boolean_repaired``: else repair with pymeshlab (duplicates, non-manifold edges/vertices,
   holes, coherent orientation) and try again;
3. ``surface_cut``: else (open surfaces, as many PartNet parts are) remove the faces whose
   centroid lies inside the primitive -- a hole in the surface, the visible equivalent of a
   break for a single-sided part. The removed share is then measured by area, not volume.
Each step is deterministic, so replaying a record gives the same mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import manifold3d as m3d
import numpy as np
import trimesh

from brokenchairs.generation.shapes.shape import make_mesh

SPHERE_SEGMENTS = 48


@dataclass(frozen=True)
class Cutter:
    kind: str  # "sphere" | "cube"
    center: tuple[float, float, float]
    size: float  # radius, or half the side of the cube
    rotation: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def manifold(self) -> m3d.Manifold:
        c = np.asarray(self.center, float)
        if self.kind == "sphere":
            return m3d.Manifold.sphere(self.size, SPHERE_SEGMENTS).translate(c)
        cube = m3d.Manifold.cube([2 * self.size] * 3, True)
        affine = np.hstack([np.asarray(self.rotation, float), c[:, None]])
        return cube.transform(affine)

    def contains(self, points: np.ndarray) -> np.ndarray:
        d = points - np.asarray(self.center)
        if self.kind == "sphere":
            return np.linalg.norm(d, axis=1) < self.size
        local = d @ np.asarray(self.rotation)  # rows of R^T d
        return np.abs(local).max(axis=1) < self.size


def _manifold(v: np.ndarray, f: np.ndarray) -> m3d.Manifold | None:
    if len(f) == 0:
        return None
    m = m3d.Manifold(m3d.Mesh(vert_properties=np.ascontiguousarray(v, np.float32),
                               tri_verts=np.ascontiguousarray(f, np.uint32)))
    if m.status() != m3d.Error.NoError or m.is_empty() or m.volume() <= 1e-12:
        return None
    return m


def _welded(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    w = trimesh.Trimesh(mesh.vertices.copy(), mesh.faces.copy(), process=False)
    w.merge_vertices(digits_vertex=7)
    w.update_faces(w.nondegenerate_faces())
    w.update_faces(w.unique_faces())
    return np.asarray(w.vertices), np.asarray(w.faces)


def _repaired(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    # imported here: pymeshlab ships an older libembree4, and bpy fails to import after it
    # (undefined symbol rtcGetSceneTraversable); bpy first, then pymeshlab, works
    import pymeshlab

    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertex_matrix=np.asarray(mesh.vertices, float), face_matrix=np.asarray(mesh.faces, np.int32)))
    ms.meshing_merge_close_vertices(threshold=pymeshlab.PercentageValue(0.01))
    ms.meshing_remove_duplicate_faces()
    ms.meshing_remove_null_faces()
    ms.meshing_repair_non_manifold_edges()
    ms.meshing_repair_non_manifold_vertices()
    ms.meshing_close_holes(maxholesize=10000)
    ms.meshing_re_orient_faces_coherently()
    m = ms.current_mesh()
    return m.vertex_matrix(), m.face_matrix()


def solidify(mesh: trimesh.Trimesh) -> tuple[m3d.Manifold | None, str, str]:
    """(solid, method, why) -- solid is None when the part cannot be made a closed manifold."""
    solid = _manifold(*_welded(mesh))
    if solid is not None:
        return solid, "boolean", ""
    import pymeshlab

    try:
        solid = _manifold(*_repaired(mesh))
    except pymeshlab.PyMeshLabException as exc:  # a filter refused this soup: fall back, say why
        return None, "surface_cut", f"repair failed: {str(exc).splitlines()[-1].strip()}"
    if solid is not None:
        return solid, "boolean_repaired", "not a closed manifold as loaded"
    return None, "surface_cut", "still not a closed manifold after repair"


def fracture(mesh: trimesh.Trimesh, cutter: Cutter) -> tuple[trimesh.Trimesh, float, str]:
    """(broken mesh, removed fraction of volume or area, method)."""
    solid, method, _ = solidify(mesh)
    if solid is not None:
        result = solid - cutter.manifold()
        out = result.to_mesh64() if hasattr(result, "to_mesh64") else result.to_mesh()
        v = np.asarray(out.vert_properties, float)[:, :3]
        f = np.asarray(out.tri_verts, np.int64)
        removed = 1.0 - result.volume() / solid.volume()
        return make_mesh(v, f), float(removed), method
    inside = cutter.contains(mesh.triangles_center)
    area = mesh.area_faces
    keep = ~inside
    used, f = np.unique(mesh.faces[keep], return_inverse=True)
    return make_mesh(mesh.vertices[used], f.reshape(-1, 3)), float(area[inside].sum() / area.sum()), method
