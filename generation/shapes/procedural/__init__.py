"""Procedural chairs: the built-in shape source, written in PartNet's layout.

``synth_chair(seed, index)`` builds one chair from the RNG seeded with (seed, index), so a chair
depends only on the dataset seed and its own index; ``synth_chairs`` writes many as PartNet
folders (y up, like real PartNet), which the PartNet loader reads back like any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brokenchairs.data_manifests.chair_varieties import CHAIR_VARIETIES, DEFAULT_VARIETY
from brokenchairs.generation.shapes.procedural.components import TreeBuilder
from brokenchairs.generation.shapes.procedural.families import FAMILIES
from brokenchairs.generation.shapes.shape import Shape, normalise

FAMILY_NAMES = tuple(FAMILIES)


def chair_family(seed: int, index: int) -> str:
    """The family of procedural chair ``index`` of ``seed``: families cycle with the index in an
    order drawn once per seed."""
    order = np.random.default_rng([seed, 0xFA]).permutation(len(FAMILY_NAMES))
    return FAMILY_NAMES[order[index % len(FAMILY_NAMES)]]


def chair_id(seed: int, index: int, variety: str = DEFAULT_VARIETY) -> str:
    prefix = "synth" if variety == DEFAULT_VARIETY else f"synth-{variety}"
    return f"{prefix}-{seed}-{index:05d}"


def synth_chair(seed: int, index: int, family: str | None = None, variety: str = DEFAULT_VARIETY) -> Shape:
    """One normalised procedural chair; the family cycles with the index unless given. A chair of
    another ``variety`` is the fixed one with the same seed and index, or that chair less one of its
    optional members, drawn from a stream of its own."""
    if variety not in CHAIR_VARIETIES:
        raise ValueError(f"unknown chair variety {variety!r}; known: {', '.join(CHAIR_VARIETIES)}")
    rng = np.random.default_rng([seed, index])
    name = family or chair_family(seed, index)
    if name not in FAMILIES:
        raise ValueError(f"unknown chair family {name!r}; known: {', '.join(FAMILY_NAMES)}")
    builder = TreeBuilder()
    FAMILIES[name](builder, rng)
    sid = chair_id(seed, index, variety)
    meta = {"anno_id": sid, "model_cat": "Chair", "model_id": sid, "family": name, "source": "procedural",
            "seed": seed, "index": index, **({} if variety == DEFAULT_VARIETY else {"variety": variety})}
    shape = Shape(sid, builder.root, meta)
    if CHAIR_VARIETIES[variety]:
        pick = np.random.default_rng([seed, index, 0x0B])
        members = builder.removable()
        if members and pick.random() < CHAIR_VARIETIES[variety]:
            shape = shape.without_part(members[int(pick.integers(len(members)))])
    return normalise(shape)


def synth_chairs(count: int, seed: int, out: str | Path, start: int = 0, variety: str = DEFAULT_VARIETY):
    """Write ``count`` chairs as PartNet folders under ``out``; yields each folder as written."""
    from brokenchairs.generation.shapes.partnet import write_shape

    for index in range(start, start + count):
        shape = synth_chair(seed, index, variety=variety)
        yield write_shape(shape, Path(out) / shape.shape_id)
