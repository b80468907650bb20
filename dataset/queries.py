"""Query samples: the record one row of a query shard holds, and its box (pure numpy).

For one view of a variant: the normal render gives ``mask_old`` (pixels of the original part),
the anomalous render gives ``mask_new`` (pixels of the changed part); the box is the bounds of
their union ("the anomalous region"). Which views are kept is quality control's decision
(``generation.units.quality``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


TWIN_SUFFIX = "/normal"  # a normal twin's sample id: its anomalous partner's id + this (generate --twins)


def twin_id(anomalous_id: str) -> str:
    """The sample id of the normal twin of an anomalous query (same camera, materials, light)."""
    return anomalous_id + TWIN_SUFFIX


def is_twin_id(sample_id: str) -> bool:
    return sample_id.endswith(TWIN_SUFFIX)


@dataclass
class QuerySample:
    sample_id: str
    shape_id: str
    unit_id: str
    anomaly_type: str
    part_path: str
    image: np.ndarray  # (H,W,3) uint8
    object_mask: np.ndarray
    mask_new: np.ndarray
    mask_old: np.ndarray
    bbox: np.ndarray  # (4,) xyxy pixels, NaN for normal samples
    depth: np.ndarray
    K: np.ndarray
    world_to_cam: np.ndarray
    azimuth: float
    elevation: float
    light_id: int
    material_id: str
    record: dict = field(default_factory=dict)

    @property
    def label(self) -> int:
        return int(self.anomaly_type != "normal")


def bbox_of(mask: np.ndarray) -> np.ndarray:
    """xyxy box in pixels (pixel edges: a single pixel (x, y) gives [x, y, x+1, y+1]); NaN if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.full(4, np.nan, np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
