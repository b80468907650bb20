"""Analytic depth of a cube seen by a pinhole camera: known geometry for the VLFA and model tests."""

from __future__ import annotations

import numpy as np


def cube_depth(K, w2c, res, half=0.3, center=(0, 0, 0.3)):
    """Analytic z-depth of an axis-aligned cube (ray/slab intersection)."""
    c2w = np.linalg.inv(w2c)
    u, v = np.meshgrid(np.arange(res) + 0.5, np.arange(res) + 0.5)
    rays_c = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    dirs = rays_c @ c2w[:3, :3].T
    o = c2w[:3, 3]
    lo, hi = np.array(center) - half, np.array(center) + half
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / dirs, (hi - o) / dirs
    tmin = np.minimum(t1, t2).max(-1)
    tmax = np.maximum(t1, t2).min(-1)
    hit = (tmax >= tmin) & (tmin > 0)
    return np.where(hit, tmin * rays_c[..., 2], 0.0)  # t along a ray with z=1 in camera -> z-depth

