"""The sRGB transfer function (IEC 61966-2-1), the one copy: on unit-range values, and on 8-bit
images through tables.

- ``srgb_to_linear`` / ``linear_to_srgb``: encoded <-> linear light, values in [0, 1], float in,
  float out (texture prefiltering averages colour in linear light, ``materials/prefilter.py``);
- ``srgb8_to_linear`` / ``linear_to_srgb8``: 0-255 sRGB <-> float32 linear light, the 8-bit side
  through tables (compositing the two render passes, ``render_region.py``).
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (the dtype of ``c``)."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear light (negatives clipped to 0) -> sRGB-encoded values in [0, 1] (the dtype of ``c``)."""
    c = np.clip(c, 0.0, None)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def _srgb8_to_linear_exact(srgb: np.ndarray) -> np.ndarray:
    return srgb_to_linear(np.asarray(srgb, np.float32) / 255.0).astype(np.float32)


_SRGB8_TO_LINEAR = _srgb8_to_linear_exact(np.arange(256))  # 8-bit sRGB -> linear, a table


def srgb8_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB values (0-255; uint8 through a table) -> float32 linear light."""
    srgb = np.asarray(srgb)
    return _SRGB8_TO_LINEAR[srgb] if srgb.dtype == np.uint8 else _srgb8_to_linear_exact(srgb)


_LINEAR_LEVELS = 65535  # linear light in 16-bit steps: < 0.03 of an 8-bit sRGB level even near black
_LINEAR_TO_SRGB8 = np.clip(linear_to_srgb(np.arange(_LINEAR_LEVELS + 1, dtype=np.float64) / _LINEAR_LEVELS) * 255.0 + 0.5,
                           0, 255).astype(np.uint8)


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """float linear light -> uint8 sRGB (rounded, clipped), through a 16-bit table (a pow per
    pixel cost ~6 ms a 256x256 frame)."""
    c = np.clip(np.asarray(linear, np.float32), 0.0, 1.0)
    return _LINEAR_TO_SRGB8[np.rint(c * _LINEAR_LEVELS).astype(np.int32)]
