"""A shape's exact silhouette coverage in a view, without Cycles (no bpy).

Cycles sets a pixel's alpha to the share of its camera samples that hit the object, the samples
spread around the pixel centre by the pixel filter (Blackman-Harris, 1.5 px wide, one axis at a
time). At the production sample count that share is noisy on every silhouette pixel, and OIDN
keeps the noise there: its albedo guide carries the same coverage. This module computes the
coverage the samples estimate: the union of the shape's projected triangles, point-sampled on a
grid of ``SUBSAMPLES`` x ``SUBSAMPLES`` points per pixel and weighted with the filter.
``query_compositor`` puts it in place of the render's alpha, in the colour and in the albedo
guide (perf/bench_render.py measures the gain). The grid is rasterised by a small numba kernel:
no library here rasterises the union of 50k overlapping triangles with point samples in a few
milliseconds (Agg's and OpenCV's fills compute winding from accumulated area, which counts the
folded front and back layers at a silhouette twice).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from brokenchairs.dataset.cameras import project

# Cycles' default pixel filter, Blackman-Harris of "width 1.5", reaches 1.5 px from the pixel's
# centre: against a 256-spp Cycles alpha, a 3 px wide Blackman-Harris gives a mean error of 0.006
# on the silhouette pixels, a 1.5 px one 0.087 (one chair; 2 px 0.058, 2.5 px 0.029).
FILTER_WIDTH_PX = 3.0
SUBSAMPLES = 6  # grid points per pixel and axis; mean error on silhouette pixels: 4 -> 0.013, 6 -> 0.007, 8 -> 0.006


def filter_weights(subsamples: int = SUBSAMPLES, width: float = FILTER_WIDTH_PX) -> np.ndarray:
    """Weights of the grid points of a 3-pixel window (the pixel and its two neighbours, along one
    axis) for the middle pixel: Cycles' Blackman-Harris filter, normalised to sum 1 (``width`` at
    most 3: the window)."""
    k = np.arange(3 * subsamples)
    d = (k + 0.5) / subsamples - 1.5  # offset from the middle pixel's centre, in pixels
    x = 2 * math.pi * (d / width + 0.5)
    w = 0.35875 - 0.48829 * np.cos(x) + 0.14128 * np.cos(2 * x) - 0.01168 * np.cos(3 * x)
    w[np.abs(d) >= width / 2] = 0.0  # (none at width 3: the window is the filter's reach)
    return w / w.sum()


def merged_mesh(parts) -> tuple[np.ndarray, np.ndarray]:
    """All parts' (vertices, faces) as one mesh: the coverage is of their union."""
    offsets = np.cumsum([0] + [len(p.mesh.vertices) for p in parts])[:-1]
    return (np.concatenate([p.mesh.vertices for p in parts]),
            np.concatenate([np.asarray(p.mesh.faces) + o for p, o in zip(parts, offsets)]))


def triangles_2d(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """(n, 3, 2) pixel coordinates of the faces in front of the camera (``cameras.project``'s:
    pixel (x, y) spans [x, x+1] x [y, y+1], y down, as Cycles' raster)."""
    uv, z = project(np.asarray(vertices, float), K, world_to_cam)
    faces = np.asarray(faces, np.int64)
    front = (z[faces] > 1e-6).all(1)
    return uv[faces[front]].astype(np.float64)


def coverage(triangles: np.ndarray, region: tuple[int, int, int, int], subsamples: int = SUBSAMPLES) -> np.ndarray:
    """(y1-y0, x1-x0) float32 filtered coverage of the union of ``triangles`` (raster
    coordinates, ``triangles_2d``) over the pixels of ``region`` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = region
    h, w = y1 - y0, x1 - x0
    if h <= 0 or w <= 0:
        raise ValueError(f"empty region {region}")
    s = subsamples
    # grid of the region plus one pixel each side (the filter reaches 1 px past a pixel's edges)
    tri = (np.asarray(triangles, np.float64).reshape(-1, 3, 2) - (x0 - 1, y0 - 1)) * s
    occ = np.zeros(((h + 2) * s, (w + 2) * s), np.uint8)
    _fill(tri, occ)
    return _filtered(occ, filter_weights(s), s, h, w)


@njit(cache=True, nogil=True)
def _fill(tri, occ):  # pragma: no cover - compiled; tested through coverage()
    """Set every grid point (centre (x+0.5, y+0.5)) inside a triangle: row by row, the span
    between the edges, so the cost is the triangle's rows, not its area."""
    gh, gw = occ.shape
    for t in range(tri.shape[0]):
        ax, ay = tri[t, 0, 0], tri[t, 0, 1]
        bx, by = tri[t, 1, 0], tri[t, 1, 1]
        cx, cy = tri[t, 2, 0], tri[t, 2, 1]
        if (bx - ax) * (cy - ay) - (by - ay) * (cx - ax) == 0.0:
            continue  # no area: no camera ray hits it
        lo_y = max(int(math.ceil(min(ay, by, cy) - 0.5)), 0)
        hi_y = min(int(math.floor(max(ay, by, cy) - 0.5)), gh - 1)
        for y in range(lo_y, hi_y + 1):
            py = y + 0.5
            left, right = np.inf, -np.inf
            for e in range(3):  # crossings of the row with the three edges
                if e == 0:
                    x1, y1, x2, y2 = ax, ay, bx, by
                elif e == 1:
                    x1, y1, x2, y2 = bx, by, cx, cy
                else:
                    x1, y1, x2, y2 = cx, cy, ax, ay
                if (y1 <= py <= y2) or (y2 <= py <= y1):
                    if y1 == y2:
                        xa, xb = min(x1, x2), max(x1, x2)
                    else:
                        xa = xb = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
                    left, right = min(left, xa), max(right, xb)
            if right < left:
                continue
            x_lo = max(int(math.ceil(left - 0.5)), 0)
            x_hi = min(int(math.floor(right - 0.5)), gw - 1)
            for x in range(x_lo, x_hi + 1):
                occ[y, x] = 1


@njit(cache=True, nogil=True)
def _filtered(occ, wv, s, h, w):  # pragma: no cover - compiled; tested through coverage()
    """The filter at the pixel centres: along x from the runs of each grid row (a pixel inside a
    run gets the weights' cumulative sum at the run's ends), then along y directly."""
    n = wv.shape[0]
    cw = np.zeros(n + 1)
    for k in range(n):
        cw[k + 1] = cw[k] + wv[k]
    gh, gw = occ.shape
    rows = np.zeros((gh, w), np.float64)
    for r in range(gh):
        x = 0
        while x < gw:
            if not occ[r, x]:
                x += 1
                continue
            a = x
            while x < gw and occ[r, x]:
                x += 1
            b = x  # a run of grid points [a, b); pixel i's window is [i*s, i*s + n)
            i_lo = max((a - n) // s + 1, 0)
            i_hi = min((b - 1) // s, w - 1)
            for i in range(i_lo, i_hi + 1):
                lo = max(a - i * s, 0)
                hi = min(b - i * s, n)
                if hi > lo:
                    rows[r, i] += cw[hi] - cw[lo]
    out = np.zeros((h, w), np.float32)
    for j in range(h):
        base = j * s
        for i in range(w):
            acc = 0.0
            for k in range(n):
                acc += wv[k] * rows[base + k, i]
            out[j, i] = acc
    return out
