"""Procedural, tileable SVBRDF materials for five classes (numpy only).

Tileable by construction: every pattern is periodic over the tile -- spectral noise is made in
the Fourier domain, cellular (Worley) noise uses a periodic KD-tree, rings and weaves use integer
frequencies. Maps: base colour (sRGB), roughness, metallic, and a tangent-space normal map
(OpenGL convention: +y up) derived from a height field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

CLASSES = ("wood", "plastic", "leather", "fabric", "metal")


@dataclass
class SVBRDF:
    name: str
    cls: str
    basecolor: np.ndarray  # (S,S,3) float in [0,1], sRGB
    roughness: np.ndarray  # (S,S)
    metallic: np.ndarray  # (S,S)
    normal: np.ndarray  # (S,S,3) float in [0,1], OpenGL tangent space
    tile_scale: float  # tiles per unit of UV / object size


# --- periodic noise ----------------------------------------------------------------------------
def spectral_noise(rng: np.random.Generator, size: int, beta: float = 2.0, stretch: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Periodic 1/f^beta noise in [0, 1]; ``stretch`` > 1 along an axis makes streaks along the other."""
    f = np.fft.fftfreq(size) * size
    fx, fy = np.meshgrid(f * stretch[0], f * stretch[1])
    amp = 1.0 / (np.hypot(fx, fy) + 1.0) ** beta
    amp[0, 0] = 0.0
    spec = amp * (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size)))
    n = np.fft.ifft2(spec).real
    return (n - n.min()) / (np.ptp(n) + 1e-12)


def worley(rng: np.random.Generator, size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Periodic cellular noise: distances to the nearest and second-nearest feature point."""
    pts = rng.random((cells, 2)) * size
    tree = cKDTree(pts, boxsize=size)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    d, _ = tree.query(np.stack([xx.ravel() % size, yy.ravel() % size], 1), k=2)
    scale = size / np.sqrt(cells)
    return (d[:, 0] / scale).reshape(size, size), (d[:, 1] / scale).reshape(size, size)


def normal_from_height(height: np.ndarray, strength: float) -> np.ndarray:
    """Tangent-space normal map (OpenGL, in [0,1]) from a periodic height field."""
    dx = (np.roll(height, -1, 1) - np.roll(height, 1, 1)) * 0.5 * strength
    dy = (np.roll(height, -1, 0) - np.roll(height, 1, 0)) * 0.5 * strength
    # image rows go down while OpenGL's +y goes up, hence +dy
    n = np.stack([-dx, dy, np.ones_like(height)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return n * 0.5 + 0.5


def _mix(a, b, t):
    t = np.asarray(t)[..., None]
    return np.asarray(a) * (1 - t) + np.asarray(b) * t


def _hsv_jitter(rng, rgb, amount=0.08):
    return np.clip(np.asarray(rgb) * (1 + rng.uniform(-amount, amount, 3)), 0, 1)


# --- classes -----------------------------------------------------------------------------------
WOODS = [((0.55, 0.36, 0.2), (0.36, 0.2, 0.1)), ((0.8, 0.62, 0.42), (0.6, 0.42, 0.25)), ((0.35, 0.2, 0.12), (0.2, 0.11, 0.06)),
         ((0.86, 0.74, 0.55), (0.7, 0.55, 0.36)), ((0.5, 0.28, 0.18), (0.3, 0.14, 0.08))]


def wood(rng, size):
    light, dark = (_hsv_jitter(rng, c) for c in WOODS[int(rng.integers(len(WOODS)))])
    rings = int(rng.integers(10, 28))
    warp = spectral_noise(rng, size, 2.5, stretch=(0.35, 1.0))  # slow bends along the plank
    yy = np.mgrid[0:size, 0:size][0] / size
    t = yy * rings + rng.uniform(0.5, 1.2) * warp
    ring = np.abs(np.sin(np.pi * t)) ** rng.uniform(0.4, 1.2)
    grain = spectral_noise(rng, size, 1.2, stretch=(0.08, 1.0))  # long fibres along x
    # a few knots: periodic radial bumps that bend the rings
    for _ in range(int(rng.integers(0, 3))):
        c = rng.random(2) * size
        d = np.abs(np.mgrid[0:size, 0:size] - c[::-1, None, None])
        d = np.minimum(d, size - d)
        r = np.hypot(d[0], d[1] * 0.6) / (size * rng.uniform(0.02, 0.05))
        ring = np.clip(ring + 0.8 * np.exp(-r**2) * np.sin(3 * r), 0, 1)
    v = np.clip(0.65 * ring + 0.35 * grain, 0, 1)
    base = _mix(light, dark, v)
    height = 0.6 * grain + 0.4 * ring
    rough = np.clip(rng.uniform(0.35, 0.6) + 0.15 * (v - 0.5), 0.05, 1)
    return base, rough, np.zeros_like(rough), normal_from_height(height, rng.uniform(1.0, 3.0)), rng.uniform(1.5, 3.0)


PLASTICS = [(0.9, 0.9, 0.88), (0.08, 0.08, 0.09), (0.75, 0.1, 0.08), (0.1, 0.3, 0.65), (0.95, 0.75, 0.1), (0.2, 0.55, 0.3),
            (0.55, 0.55, 0.58), (0.95, 0.45, 0.1)]


def plastic(rng, size):
    col = _hsv_jitter(rng, PLASTICS[int(rng.integers(len(PLASTICS)))], 0.12)
    textured = rng.random() < 0.5
    n = spectral_noise(rng, size, 0.8 if textured else 2.5)
    base = np.clip(col[None, None] * (1 + 0.04 * (n[..., None] - 0.5)), 0, 1)
    rough = np.clip(rng.uniform(0.15, 0.5) + (0.2 * (n - 0.5) if textured else 0), 0.05, 1)
    normal = normal_from_height(n, rng.uniform(2, 5) if textured else 0.3)
    return base, rough, np.zeros_like(rough), normal, rng.uniform(2.0, 6.0)


LEATHERS = [(0.35, 0.18, 0.1), (0.08, 0.06, 0.05), (0.6, 0.4, 0.25), (0.45, 0.1, 0.1), (0.75, 0.7, 0.62), (0.25, 0.15, 0.12)]


def leather(rng, size):
    col = _hsv_jitter(rng, LEATHERS[int(rng.integers(len(LEATHERS)))])
    f1, f2 = worley(rng, size, int(rng.integers(300, 900)))
    crease = np.clip((f2 - f1) * 2.0, 0, 1)  # 0 on the creases between cells
    mottle = spectral_noise(rng, size, 2.0)
    base = np.clip(col[None, None] * (0.75 + 0.25 * crease[..., None]) * (0.9 + 0.2 * mottle[..., None]), 0, 1)
    rough = np.clip(rng.uniform(0.35, 0.6) + 0.25 * (1 - crease), 0.05, 1)
    return base, rough, np.zeros_like(rough), normal_from_height(crease ** 0.5, rng.uniform(2, 4)), rng.uniform(2.0, 4.0)


FABRICS = [(0.2, 0.25, 0.45), (0.5, 0.1, 0.12), (0.35, 0.35, 0.35), (0.75, 0.7, 0.6), (0.15, 0.35, 0.2), (0.55, 0.45, 0.3),
           (0.1, 0.1, 0.12)]


def fabric(rng, size):
    col = _hsv_jitter(rng, FABRICS[int(rng.integers(len(FABRICS)))], 0.12)
    threads = int(rng.integers(24, 64))
    yy, xx = np.mgrid[0:size, 0:size] / size * threads * 2 * np.pi
    warp, weft = np.sin(xx) * 0.5 + 0.5, np.sin(yy) * 0.5 + 0.5
    over = (np.sin(xx / 2) * np.sin(yy / 2)) > 0  # plain weave: which thread lies on top
    weave = np.where(over, warp, weft)
    heather = spectral_noise(rng, size, 1.0)
    base = np.clip(col[None, None] * (0.7 + 0.3 * weave[..., None]) * (0.85 + 0.3 * heather[..., None]), 0, 1)
    rough = np.clip(rng.uniform(0.8, 0.95) + 0.05 * (heather - 0.5), 0.05, 1)
    return base, rough, np.zeros_like(rough), normal_from_height(weave, rng.uniform(1.5, 3.0)), rng.uniform(3.0, 8.0)


METALS = [(0.77, 0.78, 0.78), (0.56, 0.57, 0.58), (0.95, 0.78, 0.45), (0.3, 0.3, 0.32), (0.8, 0.5, 0.35)]
PAINTS = [(0.1, 0.1, 0.1), (0.85, 0.85, 0.85), (0.6, 0.1, 0.1), (0.1, 0.25, 0.5), (0.2, 0.35, 0.25)]


def metal(rng, size):
    brushed = rng.random() < 0.6
    if brushed:
        col = _hsv_jitter(rng, METALS[int(rng.integers(len(METALS)))], 0.05)
        streaks = spectral_noise(rng, size, 1.0, stretch=(0.02, 1.0))
        base = np.clip(col[None, None] * (0.9 + 0.1 * streaks[..., None]), 0, 1)
        rough = np.clip(rng.uniform(0.2, 0.4) + 0.15 * (streaks - 0.5), 0.05, 1)
        return base, rough, np.ones_like(rough), normal_from_height(streaks, 1.0), rng.uniform(2.0, 5.0)
    col = _hsv_jitter(rng, PAINTS[int(rng.integers(len(PAINTS)))], 0.1)  # powder-coated metal
    speckle = spectral_noise(rng, size, 0.3)
    base = np.clip(col[None, None] * (0.95 + 0.1 * speckle[..., None]), 0, 1)
    rough = np.clip(rng.uniform(0.3, 0.55) + 0.1 * (speckle - 0.5), 0.05, 1)
    return base, rough, np.full_like(rough, 0.2), normal_from_height(speckle, 0.8), rng.uniform(3.0, 6.0)


MAKERS = {"wood": wood, "plastic": plastic, "leather": leather, "fabric": fabric, "metal": metal}


def synth_material(seed: int, index: int, size: int = 512) -> SVBRDF:
    """Material ``index`` of a library: classes cycle, everything else comes from (seed, index)."""
    rng = np.random.default_rng([seed, index, 0x3A7])
    cls = CLASSES[index % len(CLASSES)]
    base, rough, metal_, normal, scale = MAKERS[cls](rng, size)
    rough = np.broadcast_to(rough, (size, size)).astype(np.float32)
    metal_ = np.broadcast_to(metal_, (size, size)).astype(np.float32)
    return SVBRDF(f"{cls}-{seed}-{index:04d}", cls, base, rough, metal_, normal, float(scale))
