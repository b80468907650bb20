"""Train/val/test splits by shape (paper: 138K/13K/26K images, about 78/7/15).

A shape's split is a pure function of its id and the split seed (a hash, not a draw from a
shared stream), so adding shapes never moves the old ones and every machine agrees. All
queries of a shape, anomalous and normal, land in its split: no reference shape is seen in
training and at test time.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "val", "test")
PAPER_RATIOS = (0.78, 0.07, 0.15)


def check_ratios(ratios: tuple[float, float, float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    return tuple(float(r) for r in ratios)  # type: ignore[return-value]


def split_of(shape_id: str, ratios: tuple[float, float, float] = PAPER_RATIOS, seed: int = 0) -> str:
    """'train', 'val' or 'test' for a shape id."""
    ratios = check_ratios(ratios)
    h = hashlib.sha256(f"split/{seed}/{shape_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    edge = 0.0
    for name, r in zip(SPLITS, ratios):
        edge += r
        if u < edge:
            return name
    return SPLITS[-1]


def assign_splits(shape_ids: list[str], ratios: tuple[float, float, float] = PAPER_RATIOS, seed: int = 0) -> dict[str, list[str]]:
    """{split: [shape ids]} in input order."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for sid in shape_ids:
        out[split_of(sid, ratios, seed)].append(sid)
    return out
