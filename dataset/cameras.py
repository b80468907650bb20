"""Cameras in the OpenCV convention (x right, y down, z forward), stored as K and world_to_cam.

Viewpoints are spherical around a target: azimuth measured in the x-y plane from +x towards +y,
elevation above the x-y plane. A normalised chair faces -y, so azimuth -pi/2 (= 3pi/2) sees
its front. Pixel centres are at integer + 0.5: the principal point of a W x H image is (W/2, H/2).
Depth is the camera-frame z (not the ray length), 0 on background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUERY_RADIUS = 2.5
DEFAULT_FOV_DEG = 25.0  # a diagonal-1 chair at radius 2.5 fills ~85% of the frame height, as in the paper


@dataclass(frozen=True)
class Viewpoint:
    azimuth: float
    elevation: float
    radius: float = QUERY_RADIUS


def intrinsics(width: int, height: int | None = None, fov_deg: float = DEFAULT_FOV_DEG) -> np.ndarray:
    """3x3 K for a horizontal field of view, square pixels, centred principal point."""
    height = width if height is None else height
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 world_to_cam of a camera at ``eye`` looking at ``target`` with world ``up`` pointing up."""
    eye, target, up = (np.asarray(a, float) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("camera looks along the up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z])
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def eye_position(view: Viewpoint, target: np.ndarray) -> np.ndarray:
    ce = np.cos(view.elevation)
    d = np.array([ce * np.cos(view.azimuth), ce * np.sin(view.azimuth), np.sin(view.elevation)])
    return np.asarray(target, float) + view.radius * d


def camera_for(view: Viewpoint, target: np.ndarray) -> np.ndarray:
    return look_at(eye_position(view, target), target)


QUERY_AZIMUTHS = 20  # paper 3.2: azimuths on the k*pi/10 grid, k = 0..19


def query_viewpoints(rng: np.random.Generator, count: int) -> list[Viewpoint]:
    """The query views of one unit (paper 3.2), the law generation renders: ``count`` distinct
    azimuths of the k*pi/10 grid (drawn without replacement, returned in grid order), each with
    an elevation uniform in [pi/9, 2pi/9], radius 2.5."""
    ks = rng.choice(QUERY_AZIMUTHS, size=count, replace=False)
    return [Viewpoint(float(k * np.pi / 10), float(rng.uniform(np.pi / 9, 2 * np.pi / 9))) for k in sorted(ks)]


def reference_viewpoints(count: int = 20, elevation: float = np.pi / 6, radius: float = QUERY_RADIUS) -> list[Viewpoint]:
    """``count`` regularly spaced azimuths at a fixed elevation on the upper hemisphere."""
    if count < 1:
        raise ValueError("view count must be at least 1")
    return [Viewpoint(2 * np.pi * k / count, elevation, radius) for k in range(count)]


def bbox_center(bounds: np.ndarray) -> np.ndarray:
    return (np.asarray(bounds)[0] + np.asarray(bounds)[1]) / 2


# --- projection -----------------------------------------------------------------------------------
def project(points: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (n,2) (continuous, pixel centres at +0.5) and camera depth z (n,)."""
    pc = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uv = pc @ K.T
    return uv[:, :2] / uv[:, 2:3], pc[:, 2]


def unproject_depth(depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """World points (H,W,3) of a z-depth map at pixel centres; NaN where depth is 0."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    pc = rays * depth[..., None]
    cam_to_world = np.linalg.inv(world_to_cam)
    pw = pc @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    pw[depth <= 0] = np.nan
    return pw
