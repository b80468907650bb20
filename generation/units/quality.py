"""Quality control of query renders (pure numpy): which views of a variant are kept.

A view is kept only if the anomalous region is visible enough; quality control rejects frames
that cut the object, objects too small, and anomalies that do not change the image
(mask_new ~ mask_old).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QCConfig:
    min_anomaly_pixels: int = 24  # at 256x256; scaled by area for other resolutions
    min_anomaly_fraction: float = 0.002  # of the object's pixels
    min_object_fraction: float = 0.02  # of the image
    max_mask_iou: float = 0.9  # mask_new vs mask_old: above this the anomaly is invisible
    border: int = 1  # object pixels this close to the frame edge mean the object is cut
    min_pixels_at_resolution: int = 0  # > 0: this many pixels at the rendered resolution, not scaled

    def scaled_min_pixels(self, resolution: int) -> int:
        if self.min_pixels_at_resolution > 0:
            return self.min_pixels_at_resolution
        return max(4, int(round(self.min_anomaly_pixels * (resolution / 256) ** 2)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def frame_rejection(object_mask: np.ndarray, cfg: QCConfig) -> str | None:
    """Reasons that apply to any render (normal or anomalous); only the object mask is needed,
    so they run on masks-only renders."""
    if object_mask.mean() < cfg.min_object_fraction:
        return "object_too_small"
    b = cfg.border
    edge = np.concatenate([object_mask[:b].ravel(), object_mask[-b:].ravel(), object_mask[:, :b].ravel(), object_mask[:, -b:].ravel()])
    if edge.any():
        return "object_cut_by_frame"
    return None


def anomaly_rejection(mask_new: np.ndarray, mask_old: np.ndarray, object_mask: np.ndarray, kind: str,
                      cfg: QCConfig) -> str | None:
    """Is the anomaly visible in this view? (paper: keep only renders where the part is visible)"""
    region = mask_new | mask_old
    res = object_mask.shape[0]
    if region.sum() < cfg.scaled_min_pixels(res) or region.sum() < cfg.min_anomaly_fraction * max(object_mask.sum(), 1):
        return "anomaly_not_visible"
    if kind != "missing" and iou(mask_new, mask_old) > cfg.max_mask_iou:
        return "masks_nearly_identical"
    return None
