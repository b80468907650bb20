"""Reference views of a shape: records and the 3D positions of encoder patches (3DPE input).

``patch_xyz`` gives, for each cell of the encoder's h x w grid (stride = H / h, 8 by default),
the world position of one real surface point seen in that cell: the object pixel nearest the
cell centre, unprojected from the depth map. Averaging a cell's points would put points in mid
air across depth discontinuities (a leg in front of the back); picking a pixel keeps every
point on the surface. ``patch_valid`` is true where the cell holds at least one object pixel,
i.e. the max-pooled silhouette.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brokenchairs.dataset.cameras import unproject_depth


@dataclass
class ViewSet:
    """The V reference views of one shape (arrays stacked along the first axis)."""

    shape_id: str
    gray: np.ndarray  # (V,H,W) uint8
    depth: np.ndarray  # (V,H,W) float32, 0 on background
    K: np.ndarray  # (V,3,3) float64
    world_to_cam: np.ndarray  # (V,4,4) float64
    azimuth: np.ndarray  # (V,) radians
    elevation: np.ndarray  # (V,)
    patch_xyz: np.ndarray  # (V,h,w,3) float32
    patch_valid: np.ndarray  # (V,h,w) bool

    @property
    def num_views(self) -> int:
        return len(self.gray)


def check_stride(resolution: int, stride: int) -> None:
    if resolution % stride:
        raise ValueError(f"resolution {resolution} is not divisible by the patch stride {stride}")


def patch_points(depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, stride: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(h,w,3) float32 world points and (h,w) validity for one view's depth map."""
    H, W = depth.shape
    check_stride(H, stride)
    check_stride(W, stride)
    return points_to_patches(unproject_depth(depth, K, world_to_cam), stride)


def points_to_patches(pts: np.ndarray, stride: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel world points (H,W,3), NaN off the object -> ((h,w,3) float32, (h,w) validity):
    each cell's object pixel nearest its centre (see the module docstring)."""
    H, W = pts.shape[:2]
    h, w = H // stride, W // stride
    fg = np.isfinite(pts).all(-1)
    # distance of each pixel centre to its cell centre; background pixels never win
    off = (np.arange(stride) + 0.5) - stride / 2
    d2 = off[:, None] ** 2 + off[None, :] ** 2
    cells_fg = fg.reshape(h, stride, w, stride).transpose(0, 2, 1, 3).reshape(h, w, stride * stride)
    score = np.where(cells_fg, d2.ravel()[None, None, :], np.inf)
    best = score.argmin(axis=2)
    valid = cells_fg.any(axis=2)
    cells_pts = pts.reshape(h, stride, w, stride, 3).transpose(0, 2, 1, 3, 4).reshape(h, w, stride * stride, 3)
    xyz = np.take_along_axis(cells_pts, best[:, :, None, None], axis=2)[:, :, 0, :]
    xyz[~valid] = 0.0
    return xyz.astype(np.float32), valid
