"""The records a worker is handed: work units, shard tasks, and the settings they render with.

``QuerySettings`` is the part of ``GenerateConfig`` a query worker needs (``GenerateConfig.settings``
builds it); ``ViewsConfig`` is the whole of ``render-views``' rendering recipe. All fields are
scalars, so a worker rebuilds them from ``asdict`` with ``Cls(**d)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from brokenchairs.dataset.cameras import DEFAULT_FOV_DEG, QUERY_RADIUS, reference_viewpoints
from brokenchairs.errors import InputError, check_int, check_number
from brokenchairs.generation.shapes.sources import ShapeRef


@dataclass(frozen=True)
class Unit:
    unit_id: str
    shape: ShapeRef
    kind: str
    seed: int
    views: int  # views to render for this unit


@dataclass(frozen=True)
class QueryTask:
    shard: str
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class QuerySettings:
    resolution: int
    samples: int
    denoise: bool
    fov_deg: float
    twins: bool
    min_anomaly_pixels: int
    materials: str  # the material library folder, resolved


@dataclass(frozen=True)
class ViewsConfig:
    views: int = 20
    elevation_deg: float = 30.0
    resolution: int = 256
    stride: int = 8
    fov_deg: float = DEFAULT_FOV_DEG
    radius: float = QUERY_RADIUS

    def validate(self) -> None:
        check_int("--views", self.views, 1, 360)
        check_number("--elevation", self.elevation_deg, -90, 90, exclusive=True)  # at +-90 the view has no up
        check_int("--stride", self.stride, 1)
        check_int("--resolution", self.resolution, 8, 4096)
        check_number("fov_deg", self.fov_deg, 0, 180, exclusive=True)
        check_number("radius", self.radius, 0, None, exclusive=True)
        if self.resolution % self.stride:
            raise InputError(None, f"--resolution {self.resolution} is not divisible by the patch stride {self.stride}")

    def viewpoints(self):
        return reference_viewpoints(self.views, math.radians(self.elevation_deg), self.radius)


@dataclass(frozen=True)
class ViewTask:
    shard: str
    refs: tuple[ShapeRef, ...]
