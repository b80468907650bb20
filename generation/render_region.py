"""Render only what needs full quality: the object's rectangle (pure geometry, no bpy).

~90% of a 256x256 query is ground: white with soft shadows that reach the frame edges under
the big area lights (so rendering "object + shadow" alone saves nothing). The shadows are smooth,
though, and the ground has no texture. So a query is rendered as
- the object's rectangle at full quality (``render_region``: the projection of the shape's
  convex hull plus a margin), via Cycles' render border + crop; Cycles seeds each pixel by its
  full-frame coordinates, so the object-index and depth passes there are those of a full-frame
  render (a test compares them), and outside it they are exactly 0;
- the whole frame at 1/``BACKGROUND_SCALE`` resolution for the ground and its shadows, upsampled
  bilinearly and feathered into the rectangle's border (``composite_background``).
Light presets live here (not in blender_scripts) because geometry needs them too.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from brokenchairs.generation.cameras import project

BACKGROUND_SCALE = 4  # the ground/shadow pass renders at 1/4 resolution (1/16 of the pixels)
BACKGROUND_SAMPLES = 8

# (type, position, power or strength, size: area side in m or sun angle in degrees)
LIGHT_PRESETS = [
    {"name": "studio", "world": 0.55, "lights": [("AREA", (-1.6, -2.2, 3.0), 260.0, 2.5), ("AREA", (2.5, 1.0, 2.0), 80.0, 2.0)]},
    {"name": "overhead", "world": 0.6, "lights": [("AREA", (0.2, -0.3, 3.2), 300.0, 3.0)]},
    {"name": "sun", "world": 0.5, "lights": [("SUN", (-0.6, -0.9, 1.4), 2.6, 12.0)]},
    {"name": "window", "world": 0.45, "lights": [("AREA", (-3.0, -0.5, 2.2), 380.0, 2.5), ("AREA", (0.0, 0.0, 3.5), 60.0, 3.0)]},
]


def hull_points(points: np.ndarray) -> np.ndarray:
    """The convex-hull vertices of a point set (all of it if degenerate)."""
    points = np.asarray(points, float)
    try:
        return points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return points


def render_region(hull: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, resolution: int,
                  margin: float = 0.04) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixel rectangle (x1, y1 exclusive) around the projected object.

    ``hull``: the shape's points, ideally ``hull_points`` of them (computed once per shape, not per view).
    """
    uv, z = project(hull, K, world_to_cam)
    uv = uv[z > 1e-6]
    pad = margin * resolution
    x0, y0 = np.floor(uv.min(0) - pad).astype(int)
    x1, y1 = np.ceil(uv.max(0) + pad).astype(int)
    clip = lambda a: int(min(max(a, 0), resolution))  # noqa: E731
    return clip(x0), clip(y0), clip(x1), clip(y1)


def composite_background(rgb: np.ndarray, region: tuple[int, int, int, int], background_alpha: np.ndarray,
                         feather: int) -> np.ndarray:
    """Ground outside ``region`` from a low-resolution shadow-catcher alpha, blended over ``feather``
    pixels inside the region's inner edges (object pixels sit farther in than the margin)."""
    from PIL import Image

    H, W = rgb.shape[:2]
    a = np.asarray(Image.fromarray(background_alpha.astype(np.float32)).resize((W, H), Image.BILINEAR))
    ground = 255.0 * (1.0 - np.clip(a, 0, 255) / 255.0)
    x0, y0, x1, y1 = region
    ys, xs = np.arange(H)[:, None] + 0.5, np.arange(W)[None, :] + 0.5
    # distance to the region's nearest edge; frame edges are not seams, so they do not count
    dx = np.minimum(np.where(x0 > 0, xs - x0, np.inf), np.where(x1 < W, x1 - xs, np.inf))
    dy = np.minimum(np.where(y0 > 0, ys - y0, np.inf), np.where(y1 < H, y1 - ys, np.inf))
    inside = np.minimum(dx, dy)
    inside = np.where((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1), inside, 0.0)
    w = np.clip(inside / max(feather, 1), 0, 1)[..., None]
    out = w * rgb.astype(np.float32) + (1 - w) * ground[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
