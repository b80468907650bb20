"""Grayscale, textureless reference views with depth (Workbench), paper section 3.2.

One ``ViewRenderer`` per worker process: the scene, the Workbench settings and the compositor
are set up once; each shape only swaps its part objects, then the camera moves per view. One
Workbench render per view gives both the shaded image and the depth pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import bpy
import numpy as np

from brokenchairs.blender_scripts import scene as sc
from brokenchairs.blender_scripts.passes import PassReader, clean_depth
from brokenchairs.dataset.cameras import Viewpoint, bbox_center, camera_for, intrinsics
from brokenchairs.generation.shapes.shape import Shape
from brokenchairs.dataset.views import ViewSet, check_stride, patch_points

GRAY_LEVEL = 1.0  # albedo of the textureless references; with STUDIO_LIGHT they come out light gray
STUDIO_LIGHT = "outdoor.sl"  # light and shaded like the released references (Default is darker)


class ViewRenderer:
    def __init__(self, resolution: int = 256, stride: int = 8, fov_deg: float | None = None, threads: int | None = None):
        check_stride(resolution, stride)
        self.resolution, self.stride = resolution, stride
        self.K = intrinsics(resolution) if fov_deg is None else intrinsics(resolution, fov_deg=fov_deg)
        sc.init_blender(threads)
        # 5 AA samples: ~15% less CPU than 8 with the same thin-leg quality (perf/bench_views.py)
        sc.setup_workbench(color_type="SINGLE", shadows=False, aa_samples="5")
        shading = bpy.context.scene.display.shading
        shading.single_color = (GRAY_LEVEL,) * 3
        shading.show_cavity = False
        shading.studio_light = STUDIO_LIGHT
        sc.set_resolution(resolution, resolution)
        self.passes = PassReader(("depth",))

    def render(self, shape: Shape, viewpoints: Sequence[Viewpoint]) -> ViewSet:
        sc.clear_objects()
        sc.add_part_objects(shape.parts())
        target = bbox_center(shape.bounds)
        n, r = len(viewpoints), self.resolution
        gray = np.empty((n, r, r), np.uint8)
        depth = np.empty((n, r, r), np.float32)
        w2c = np.empty((n, 4, 4))
        for i, view in enumerate(viewpoints):
            w2c[i] = camera_for(view, target)
            sc.set_camera(self.K, w2c[i], r, r)
            rgba = sc.render_rgba()
            depth[i] = clean_depth(self.passes.read()["depth"])
            gray[i] = to_gray(sc.over_white(rgba))
        xyz, valid = zip(*(patch_points(depth[i], self.K, w2c[i], self.stride) for i in range(n)))
        return ViewSet(
            shape_id=shape.shape_id, gray=gray, depth=depth, K=np.repeat(self.K[None], n, 0), world_to_cam=w2c,
            azimuth=np.array([v.azimuth for v in viewpoints]), elevation=np.array([v.elevation for v in viewpoints]),
            patch_xyz=np.stack(xyz), patch_valid=np.stack(valid),
        )

    def close(self) -> None:
        self.passes.close()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an (H,W,3) uint8 image, as PIL's 'L' mode."""
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(y + 0.5, 0, 255).astype(np.uint8)
