"""Renders of a ``QueryRenderer``'s scene that production never makes, for tests and ``perf/``:
one view on its own, Cycles' own alpha (what ``generation/render/coverage.py`` computes exactly), and
the textbook single-pass render (the baselines and the ground truth of ``perf/bench_render.py``).
Production renders through ``QueryRenderer.render_views`` only.
"""

from __future__ import annotations

import bpy
import numpy as np

from brokenchairs.blender_scripts.passes import clean_depth
from brokenchairs.blender_scripts.query_scene import SAMPLING_PATTERN, QueryRenderer

FACTORY_PATTERN = "TABULATED_SOBOL"  # the baselines of render_single_pass: Cycles as it comes


def render_view(renderer: QueryRenderer, K: np.ndarray, world_to_cam: np.ndarray,
                masks_only: bool = False) -> dict[str, np.ndarray]:
    """RGB (uint8), object index and depth of one full view (``render_views`` of one camera)."""
    return renderer.render_views(K, [world_to_cam], masks_only)[0]


def render_alpha(renderer: QueryRenderer, K: np.ndarray, world_to_cam: np.ndarray, samples: int) -> np.ndarray:
    """The object's (h, w) alpha over the whole frame as Cycles' ``samples`` camera samples per
    pixel estimate it (the object pass unshaded): the truth ``generation.render.coverage`` computes exactly."""
    r = renderer.resolution
    _, passes = renderer.render_pass(K, world_to_cam, r, (0, 0, r, r), objects=True, samples=samples, denoise=False,
                                     shaded=False, passes=("alpha",), rgb=False)
    return passes["alpha"]


def render_single_pass(renderer: QueryRenderer, K: np.ndarray, world_to_cam: np.ndarray, samples: int,
                       cycles_denoiser: tuple[str, str] | None = None, seed: int = 0,
                       threads: int | None = None, pattern: str = FACTORY_PATTERN) -> dict[str, np.ndarray]:
    """The textbook render, for comparisons: one full frame, chair and ground seen together,
    Cycles' own denoiser (prefilter, quality) on the transparent render or none, then over white.
    ``seed``: Cycles' sampling seed (production uses 0); ``threads``: for this render only;
    ``pattern``: Cycles' sample pattern (by default the factory scene's, not production's)."""
    r = renderer.resolution
    scene = bpy.context.scene
    cyc = scene.cycles
    saved_threads = scene.render.threads
    cyc.use_denoising = cycles_denoiser is not None
    if cycles_denoiser is not None:
        cyc.denoiser, cyc.denoising_input_passes = "OPENIMAGEDENOISE", "RGB_ALBEDO_NORMAL"
        cyc.denoising_prefilter, cyc.denoising_quality = cycles_denoiser
    cyc.seed, cyc.sampling_pattern = seed, pattern
    if threads:
        scene.render.threads = threads
    try:
        rgb, passes = renderer.render_pass(K, world_to_cam, r, (0, 0, r, r), objects=True, samples=samples,
                                           denoise=False, ground_visible=True)
    finally:
        cyc.use_denoising, cyc.seed, scene.render.threads = False, 0, saved_threads
        cyc.sampling_pattern = SAMPLING_PATTERN
    index = np.rint(passes["index"]).astype(np.int32)
    depth = clean_depth(passes["depth"])
    depth[index == 0] = 0.0  # the shadow-catcher ground is background
    return {"rgb": rgb, "index": index, "depth": depth}
