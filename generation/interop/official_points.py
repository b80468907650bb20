"""The release's point records: one set of surface points per shape, seen (or not) in each reference view.

``render_multiview.py`` samples 2000 area-uniform points on the shape's surface once and writes, per
view, their pixels (``pxy``, (row, col)) and a ray-cast visibility (``is_visible``). We sample the same
way (``Shape.sample_points``, seeded by the shape id) and decide visibility with the view's depth map:
a point is visible when it falls on an object pixel whose depth is at most one pixel footprint
(z / f) in front of it. ``perf/bench_official_points.py`` measures it against exact ray casts.

A dataset imported from a release has no meshes: the importer keeps the release's records in
``<dataset>/official-points/<shape id>.npz`` (``pxy`` (V, P, 2), ``is_visible`` (V, P)), and the exporter
writes them back unchanged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from brokenchairs.errors import InputError
from brokenchairs.dataset.cameras import project
from brokenchairs.generation.interop.official import POINTS

POINTS_DIR = "official-points"


def surface_points(shape, count: int = POINTS) -> np.ndarray:
    """(count, 3) area-uniform points on the shape's surface, the same for the same shape id."""
    seed = int.from_bytes(hashlib.sha256(shape.shape_id.encode()).digest()[:8], "little")
    return shape.sample_points(count, np.random.default_rng(seed))[0]


def visible(points: np.ndarray, depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """(P,) bool: points on an object pixel whose depth is at most one pixel footprint in front of them."""
    uv, z = project(points, K, world_to_cam)
    H, W = depth.shape
    col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (z > 0)
    d = depth[np.clip(row, 0, H - 1), np.clip(col, 0, W - 1)].astype(np.float64)
    return inside & (d > 0) & (z <= d + z / K[0, 0])


def pixel_rows_cols(points: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """(P, 2) int64 (row, col) of the pixel that holds each point's projection (may fall outside)."""
    uv, _ = project(points, K, world_to_cam)
    return np.floor(uv[:, ::-1]).astype(np.int64)


def points_path(dataset: Path, shape_id: str) -> Path:
    return Path(dataset) / POINTS_DIR / f"{shape_id}.npz"


def write_points(dataset: Path, shape_id: str, pxy: np.ndarray, is_visible: np.ndarray) -> None:
    path = points_path(dataset, shape_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pxy=np.asarray(pxy, np.int64), is_visible=np.asarray(is_visible, bool))


def read_points(dataset: Path, shape_id: str, views: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The kept release records of a shape, or None when it has none."""
    path = points_path(dataset, shape_id)
    if not path.is_file():
        return None
    with np.load(path) as z:
        pxy, vis = z["pxy"], z["is_visible"]
    if pxy.ndim != 3 or pxy.shape[0] != views or vis.shape != pxy.shape[:2]:
        raise InputError(path, f"point records of shape {pxy.shape} / {vis.shape} do not fit {views} views")
    return pxy, vis
