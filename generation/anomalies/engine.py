"""Make one anomaly: pick a part, draw parameters, apply, test perceptibility, retry.

``make_anomaly(shape, kind, rng, spec, pool)`` -> (anomalous shape, AnomalyRecord); the record
holds the type, the part's id and label path, every drawn number, the donor (swapped), and the
rejections counted on the way. ``apply_record(record, shape)`` replays it bit for bit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.errors import InputError
from brokenchairs.generation.anomalies.ops import APPLY, DRAW, rejection
from brokenchairs.generation.anomalies.spec import load_spec
from brokenchairs.generation.shapes.inventory import leaf_nodes
from brokenchairs.generation.shapes.shape import Part, Shape
from brokenchairs.generation.shapes.sources import ShapeRef, load_ref


class AnomalyFailed(Exception):
    """No perceptible variant within the attempts allowed (a normal outcome, counted at scale)."""

    def __init__(self, kind: str, shape_id: str, reason: str, rejections: dict | None = None):
        self.kind, self.shape_id, self.reason, self.rejections = kind, shape_id, reason, dict(rejections or {})
        super().__init__(f"{kind} on {shape_id}: {reason} {self.rejections or ''}".strip())

    def __reduce__(self):
        return (AnomalyFailed, (self.kind, self.shape_id, self.reason, self.rejections))


@dataclass
class AnomalyRecord:
    type: str
    shape_id: str
    part_id: int
    part_path: str
    params: dict
    metrics: dict = field(default_factory=dict)
    attempts: int = 1
    rejections: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> AnomalyRecord:
        return AnomalyRecord(**d)


class DonorPool:
    """Same-label donor parts for ``swapped``, indexed from the shapes' trees (meshes load lazily)."""

    def __init__(self, refs: list[ShapeRef]):
        self.refs = list(refs)
        self._index: dict[str, list[tuple[ShapeRef, int]]] | None = None

    def _build(self) -> dict[str, list[tuple[ShapeRef, int]]]:
        index: dict[str, list[tuple[ShapeRef, int]]] = {}
        for ref in self.refs:
            if ref.kind == "partnet":
                leaves = leaf_nodes(Path(ref.path))
            else:
                leaves = [(p.node_id, p.path_str) for p in load_ref(ref).parts()]
            for node_id, path in leaves:
                index.setdefault(path.rsplit("/", 1)[-1], []).append((ref, node_id))
        return index

    def candidates(self, label: str, exclude: str) -> list[tuple[ShapeRef, int]]:
        if self._index is None:
            self._index = self._build()
        return [(r, n) for r, n in self._index.get(label, []) if r.shape_id != exclude]


@lru_cache(maxsize=1)
def default_spec() -> dict:
    return load_spec()


LEVEL_TYPES = ("position", "rotation", "missing")  # types that also work on inner nodes


def level_parts(shape: Shape, level: int) -> list[Part]:
    """Nodes at depth ``level`` (root = 0), plus shallower leaves, each seen as one part."""
    out = []
    for path, node in shape.iter_nodes():
        depth = len(path) - 1
        if depth == level or (depth < level and node.is_leaf and node.mesh is not None):
            if any(p.node_id in shape.subtree_ids(node.id) for p in shape.parts()):
                out.append(shape.group_part(node.id))
    return out


def eligible_parts(shape: Shape, kind: str, spec: dict, label: str | None = None, part_id: int | None = None,
                   pool: DonorPool | None = None, level: int | None = None) -> list[Part]:
    source = shape.meta.get("source")
    if level is not None or (part_id is not None and part_id not in {p.node_id for p in shape.parts()}):
        if kind not in LEVEL_TYPES:
            raise InputError(source, f"{kind} works on leaf parts only; tree levels take {', '.join(LEVEL_TYPES)}")
    if part_id is not None:
        if part_id not in {n.id for _, n in shape.iter_nodes()}:
            raise InputError(source, f"shape {shape.shape_id} has no leaf part with id {part_id}")
        return [shape.group_part(part_id)]
    if level is not None:
        if level < 1:
            raise InputError(source, f"--level must be at least 1 (the root is level 0), got {level}")
        parts = level_parts(shape, level)
        if label is not None:
            parts = [p for p in parts if p.label == label]
            if not parts:
                raise InputError(source, f"shape {shape.shape_id} has no node labelled {label!r} at level {level}")
        return parts
    parts = shape.parts()
    if label is not None:
        parts = [p for p in parts if p.label == label]
        if not parts:
            raise InputError(shape.meta.get("source"), f"shape {shape.shape_id} has no part labelled {label!r}")
    else:
        allowed = set(spec[kind]["labels"])
        parts = [p for p in parts if p.label in allowed]
    if kind == "swapped":
        parts = [p for p in parts if pool is not None and pool.candidates(p.label, shape.shape_id)]
    return parts


def make_anomaly(shape: Shape, kind: str, rng: np.random.Generator, spec: dict | None = None,
                 pool: DonorPool | None = None, label: str | None = None,
                 part_id: int | None = None, level: int | None = None) -> tuple[Shape, AnomalyRecord]:
    if kind not in ANOMALY_TYPES:
        raise InputError(None, f"unknown anomaly type {kind!r}; use one of {', '.join(ANOMALY_TYPES)}")
    spec = spec or default_spec()
    parts = eligible_parts(shape, kind, spec, label, part_id, pool, level)
    if not parts:
        why = "no part with a same-label donor in the pool" if kind == "swapped" else "no eligible part"
        raise AnomalyFailed(kind, shape.shape_id, why)
    rejections: Counter = Counter()
    attempts = int(spec["perceptibility"]["max_attempts"])
    for attempt in range(1, attempts + 1):
        part = parts[int(rng.integers(len(parts)))]
        params = DRAW[kind](shape, part, rng, spec, pool)
        new_shape, info = APPLY[kind](shape, part, params)
        reason, metrics = rejection(kind, shape, part, params, info, spec)  # no timings: records are data
        if reason is None:
            if kind == "swapped":
                metrics["donor_path"] = info["donor_path"]
            record = AnomalyRecord(kind, shape.shape_id, part.node_id, part.path_str, params, metrics, attempt,
                                   dict(rejections))
            return new_shape, record
        rejections[reason] += 1
    raise AnomalyFailed(kind, shape.shape_id, f"no perceptible variant in {attempts} attempts", rejections)


def apply_record(record: AnomalyRecord, shape: Shape) -> Shape:
    """Replay a record on its reference shape (swapped loads its donor from the record's ref)."""
    if record.shape_id != shape.shape_id:
        raise ValueError(f"record is for shape {record.shape_id}, not {shape.shape_id}")
    new_shape, _ = APPLY[record.type](shape, shape.group_part(record.part_id), record.params)
    return new_shape
