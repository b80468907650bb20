"""Texture prefiltering for query renders: SVBRDF maps reduced to the density the camera resolves.

Cycles on the CPU samples image textures without mip-maps. At 256x256 a 512-px map tiled a few
times per metre puts 5-20 texels under each pixel, so each sample of a pixel picks a different
texel: the texture itself becomes noise (in the colour and in the denoiser's albedo guide, which
OIDN then keeps as "detail"). Reducing each map by a power of two until about ``TEXELS_PER_PIXEL``
texels cover a pixel at the query distance, with the right averages per map, removes that noise
without changing the pixel means (perf/bench_render.py compares against full-resolution textures):
- colour: averaged in linear light (averaging sRGB values would darken the result);
- normals: averaged as vectors and renormalised; the shortening of the mean (its spread) goes into
  the roughness (Toksvig), so bumps too small to see still blur highlights;
- roughness: averaged as alpha^2 = roughness^4 (what GGX mixes), plus the normals' spread;
- metallic / specular: plain averages.
A map whose texels are all equal becomes a constant (one less texture lookup per shader call).
Everything here is numpy on float arrays in [0, 1], channels last; Blender I/O is in blender_scripts.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from brokenchairs.dataset.cameras import DEFAULT_FOV_DEG, QUERY_RADIUS
from brokenchairs.generation.render.srgb import linear_to_srgb, srgb_to_linear

UV_UNITS_PER_METRE = 2.0  # texel density before the material's own tile scale (shape diagonal = 1)
TEXELS_PER_PIXEL = 2.0  # keep at least this many texels per pixel at the query distance
FLAT_ROUGHNESS = 0.5  # Blender's Principled default, for maps without a roughness map
CONSTANT_TOLERANCE = 0.5 / 255  # a map whose values all lie within this of each other is constant


def texels_per_pixel(texture_px: int, tile_scale: float, resolution: int, fov_deg: float = DEFAULT_FOV_DEG,
                     distance: float = QUERY_RADIUS) -> float:
    """How many texels of a ``texture_px`` map span one pixel of a surface facing the camera."""
    pixels_per_metre = 0.5 * resolution / math.tan(math.radians(fov_deg) / 2) / distance
    texels_per_metre = texture_px * tile_scale * UV_UNITS_PER_METRE
    return texels_per_metre / pixels_per_metre


def mip_factor(texture_px: int, tile_scale: float, resolution: int, fov_deg: float = DEFAULT_FOV_DEG,
               distance: float = QUERY_RADIUS, target: float = TEXELS_PER_PIXEL) -> int:
    """The largest power of two that leaves at least ``target`` texels per pixel (1: keep the map)."""
    ratio = texels_per_pixel(texture_px, tile_scale, resolution, fov_deg, distance) / target
    factor = 1
    while factor * 2 <= ratio and texture_px // (factor * 2) >= 1:
        factor *= 2
    return factor


def box_reduce(a: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks (Pillow's box filter: exact block means when ``factor``
    divides the size, an area-weighted resample when it does not)."""
    a = np.asarray(a, np.float32)
    if factor == 1:
        return a
    h, w = a.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    channels = a.reshape(h, w, -1)
    out = [np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c]), "F").resize(size, Image.BOX))
           for c in range(channels.shape[-1])]
    return np.stack(out, -1).reshape(size[1], size[0], *a.shape[2:])


def reduce_color(srgb: np.ndarray, factor: int, encoded: bool = True) -> np.ndarray:
    """Colour map (h, w, c): the mean in linear light; ``encoded``: values are sRGB-encoded."""
    if not encoded:
        return box_reduce(srgb, factor)
    return linear_to_srgb(box_reduce(srgb_to_linear(np.asarray(srgb, np.float32)), factor)).astype(np.float32)


def reduce_normal(normal_rgb: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-space normal map (h, w, 3) encoded as n * 0.5 + 0.5 -> (reduced map, Toksvig spread).

    The spread (1 - |mean n|) / |mean n| is 0 where the normals in a block agree. The green
    channel's convention (OpenGL or DirectX) does not matter: averaging commutes with its flip.
    """
    n = np.asarray(normal_rgb, np.float32)[..., :3] * 2.0 - 1.0
    n = n / np.clip(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6, None)  # 8-bit texels are not quite unit
    mean = box_reduce(n, factor)
    length = np.clip(np.linalg.norm(mean, axis=-1), 1e-4, 1.0)
    encoded = mean / length[..., None] * 0.5 + 0.5
    return encoded.astype(np.float32), ((1.0 - length) / length).astype(np.float32)


def resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 2-D map resampled (area average) to ``shape`` (h, w)."""
    a = np.asarray(a, np.float32)
    if a.shape == tuple(shape):
        return a
    return np.asarray(Image.fromarray(np.ascontiguousarray(a), "F").resize((shape[1], shape[0]), Image.BOX))


def reduce_roughness(roughness: np.ndarray | float, factor: int, spread: np.ndarray | None = None,
                     shape: tuple[int, int] | None = None) -> np.ndarray:
    """Roughness (h, w) reduced as alpha^2 = r^4 plus the normals' ``spread`` (Toksvig), at the
    reduced roughness map's size. A scalar ``roughness`` (no map) is broadcast to ``shape`` first."""
    if np.ndim(roughness) == 0:
        roughness = np.full(shape, float(roughness), np.float32)
    alpha2 = box_reduce(np.asarray(roughness, np.float32) ** 4, factor)
    if spread is not None:
        alpha2 = alpha2 + resize(spread, alpha2.shape)  # maps of different sizes: at the roughness map's
    return (np.clip(alpha2, 0.0, 1.0) ** 0.25).astype(np.float32)


def constant_value(a: np.ndarray) -> tuple[float, ...] | None:
    """The per-channel value of a map whose texels are all equal (within ``CONSTANT_TOLERANCE``), else None."""
    a = np.asarray(a, np.float32)
    flat = a.reshape(-1, a.shape[-1]) if a.ndim == 3 else a.reshape(-1, 1)
    lo, hi = flat.min(0), flat.max(0)
    if np.all(hi - lo <= CONSTANT_TOLERANCE):
        return tuple(float(v) for v in (lo + hi) / 2)
    return None


def prefilter_maps(maps: dict[str, np.ndarray], factors: dict[str, int], color_encoded: bool = True) -> dict[str, np.ndarray]:
    """role -> array, each map reduced by its ``factors[role]`` as the module docstring says.

    ``maps`` holds float arrays in [0, 1] (colour/normal (h, w, >=3), others (h, w)); a normal map
    without a roughness map yields one (from ``FLAT_ROUGHNESS``, at the normal map's size),
    because the normals' spread must go somewhere. ``color_encoded``: the colour map holds
    sRGB-encoded values (8-bit images)."""
    if any(f < 1 for f in factors.values()):
        raise ValueError(f"mip factors must be >= 1, got {factors}")
    out: dict[str, np.ndarray] = {}
    spread = None
    if "normal" in maps:
        out["normal"], spread = reduce_normal(maps["normal"], factors["normal"])
    if "basecolor" in maps:
        out["basecolor"] = reduce_color(np.asarray(maps["basecolor"], np.float32)[..., :3], factors["basecolor"],
                                        color_encoded)
    if "roughness" in maps:
        out["roughness"] = reduce_roughness(maps["roughness"], factors["roughness"], spread)
    elif spread is not None:
        out["roughness"] = reduce_roughness(FLAT_ROUGHNESS, 1, spread, spread.shape)
    for role in ("metallic", "specular"):
        if role in maps:
            out[role] = box_reduce(maps[role], factors[role])
    return out
