"""Small geometric helpers for anomalies: rigid transforms, principal axes, Chamfer distance."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from brokenchairs.generation.shapes.shape import make_mesh, sample_surface


def rotation_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation about a unit axis (Rodrigues)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def rigid(mesh: trimesh.Trimesh, rotation: np.ndarray | None = None, pivot=None, translation=None) -> trimesh.Trimesh:
    v = mesh.vertices
    if rotation is not None:
        p = np.asarray(pivot, float)
        v = (v - p) @ np.asarray(rotation).T + p
    if translation is not None:
        v = v + np.asarray(translation, float)
    return make_mesh(v, mesh.faces)


def random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def principal_axis(mesh: trimesh.Trimesh, rng: np.random.Generator) -> np.ndarray:
    """The direction of largest extent of the part's surface samples."""
    pts = sample_surface(mesh, 500, rng)
    cov = np.cov((pts - pts.mean(0)).T)
    return np.linalg.eigh(cov)[1][:, -1]


def chamfer(a: trimesh.Trimesh, b: trimesh.Trimesh, samples: int, seed: int = 0) -> float:
    """Symmetric Chamfer distance (mean of both directions' mean nearest distances)."""
    rng = np.random.default_rng(seed)
    pa, pb = sample_surface(a, samples, rng), sample_surface(b, samples, rng)
    da, _ = cKDTree(pb).query(pa)
    db, _ = cKDTree(pa).query(pb)
    return float(0.5 * (da.mean() + db.mean()))


def extent(mesh: trimesh.Trimesh) -> np.ndarray:
    lo, hi = mesh.bounds
    return hi - lo
