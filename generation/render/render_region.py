"""Two-pass query rendering, the geometry and pixel side (no bpy).

~85% of a 256x256 query is ground: white with soft shadows that reach the frame edges under the
big area lights. The ground has no texture and its shadows are smooth, so a query is rendered as
- a ground pass: the whole frame at 1/``GROUND_SCALE`` resolution (``render_settings``), the
  chair hidden from the camera (it still casts its shadows), denoised, upsampled in linear light
  (``upsample_ground``);
- an object pass: only the object's rectangle (``render_region``: the projection of the shape's
  convex hull plus a margin) via Cycles' render border + crop, the ground hidden from the camera
  (it still lights the chair), so rays that miss the chair cost almost nothing. The chair is
  composited over the ground pass in linear light *before* the denoiser runs, so anti-aliased
  edges are denoised as they will be seen (denoising a transparent render and compositing it
  afterwards leaves the alpha's noise at every silhouette pixel);
- outside the rectangle, the ground pass (``assemble``); inside it, away from the object, the
  denoised pixels fade into the ground pass, so no rectangle shows.
Cycles seeds each pixel by its full-frame coordinates, so the object-index and depth passes in
the rectangle are those of a full-frame render (a test compares them), and outside it exactly 0.
The pass's scale and sample counts, and the lights, are in ``render_settings``; sRGB in ``srgb``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from brokenchairs.dataset.cameras import project
from brokenchairs.generation.render.srgb import linear_to_srgb8, srgb8_to_linear

# Pixels around the object's projected bounding box: Cycles' pixel filter ("1.5 px") reaches 1.5 px
# out (generation/render/coverage.py), so 3 px keep every object pixel inside; each pixel more costs samples and denoising.
REGION_MARGIN_PX = 3.0


def hull_points(points: np.ndarray) -> np.ndarray:
    """The convex-hull vertices of a point set (all of it if degenerate)."""
    points = np.asarray(points, float)
    try:
        return points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return points


def render_region(hull: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, resolution: int,
                  margin: float = REGION_MARGIN_PX) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) integer pixel rectangle (x1, y1 exclusive) around the projected object,
    ``margin`` pixels wider on each side (clipped to the frame).

    ``hull``: the shape's points, ideally ``hull_points`` of them (computed once per shape, not per view).
    """
    uv, z = project(hull, K, world_to_cam)
    uv = uv[z > 1e-6]
    pad = margin
    x0, y0 = np.floor(uv.min(0) - pad).astype(int)
    x1, y1 = np.ceil(uv.max(0) + pad).astype(int)
    clip = lambda a: int(min(max(a, 0), resolution))  # noqa: E731
    return clip(x0), clip(y0), clip(x1), clip(y1)


def upsample_ground(ground_srgb: np.ndarray, size: int) -> np.ndarray:
    """The low-resolution ground pass (h, w, 3) uint8 sRGB -> (size, size, 3) float32 linear grey,
    bicubic in linear light (shadows are smooth; interpolating sRGB values would darken them)."""
    from PIL import Image

    # white lights over a white ground: the ground is grey; averaging the channels also removes the
    # faint colour casts the denoiser leaves in the small image's corners
    lin = srgb8_to_linear(ground_srgb[..., :3]).mean(-1)
    grey = np.clip(np.asarray(Image.fromarray(lin).resize((size, size), Image.BICUBIC)), 0.0, 1.0)
    return np.repeat(grey[..., None], 3, -1).astype(np.float32)


# The denoiser also smooths the ground it sees inside the rectangle, a shade apart from the ground
# pass outside it: a faint rectangle. Away from the object the rectangle's pixels fade to the ground
# pass: denoised weight 1 up to FEATHER_PX[0] pixels from the nearest object pixel, 0 from FEATHER_PX[1].
FEATHER_PX = (2.0, 6.0)


def assemble(ground_linear: np.ndarray, region: tuple[int, int, int, int], object_rgb: np.ndarray,
             object_mask: np.ndarray | None = None, feather: tuple[float, float] = FEATHER_PX) -> np.ndarray:
    """The final uint8 frame: the ground pass, and inside ``region`` the object pass -- all of it,
    or with ``object_mask`` (the region's object pixels) only near the object, faded in linear
    light into the ground pass with (chessboard) distance from it: untouched up to ``feather[0]``
    pixels, exactly the ground from ``feather[1]``."""
    from scipy.ndimage import distance_transform_cdt

    out = linear_to_srgb8(ground_linear)
    x0, y0, x1, y1 = region
    crop = out[y0:y1, x0:x1]
    if object_mask is None:
        crop[...] = object_rgb
        return out
    if not object_mask.any():
        return out
    near, far = feather
    d = distance_transform_cdt(~object_mask, metric="chessboard")  # 4x cheaper than Euclidean; a 4-px fade
    keep = d <= near
    crop[keep] = object_rgb[keep]
    band = (d > near) & (d < far)
    w = ((far - d[band]) / (far - near)).astype(np.float32)[:, None]
    crop[band] = linear_to_srgb8(w * srgb8_to_linear(object_rgb[band]) + (1 - w) * ground_linear[y0:y1, x0:x1][band])
    return out
