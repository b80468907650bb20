"""Procedural chairs: the built-in shape source, written in PartNet's layout.

``synth_chair(seed, index)`` builds one chair from the RNG seeded with (seed, index), so a chair
depends only on the dataset seed and its own index; ``synth_chairs`` writes many as PartNet
folders (y up, like real PartNet), which the PartNet loader reads back like any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brokenchairs.generation.shapes.procedural.components import TreeBuilder
from brokenchairs.generation.shapes.procedural.families import FAMILIES
from brokenchairs.generation.shapes.shape import Shape, normalise

FAMILY_NAMES = tuple(FAMILIES)


def chair_id(seed: int, index: int) -> str:
    return f"synth-{seed}-{index:05d}"


def synth_chair(seed: int, index: int, family: str | None = None) -> Shape:
    """One normalised procedural chair; the family cycles with the index unless given."""
    rng = np.random.default_rng([seed, index])
    order = np.random.default_rng([seed, 0xFA]).permutation(len(FAMILY_NAMES))
    name = family or FAMILY_NAMES[order[index % len(FAMILY_NAMES)]]
    if name not in FAMILIES:
        raise ValueError(f"unknown chair family {name!r}; known: {', '.join(FAMILY_NAMES)}")
    builder = TreeBuilder()
    FAMILIES[name](builder, rng)
    meta = {"anno_id": chair_id(seed, index), "model_cat": "Chair", "model_id": chair_id(seed, index),
            "family": name, "source": "procedural", "seed": seed, "index": index}
    return normalise(Shape(chair_id(seed, index), builder.root, meta))


def synth_chairs(count: int, seed: int, out: str | Path, start: int = 0):
    """Write ``count`` chairs as PartNet folders under ``out``; yields each folder as written."""
    from brokenchairs.generation.shapes.partnet import write_shape

    for index in range(start, start + count):
        shape = synth_chair(seed, index)
        yield write_shape(shape, Path(out) / shape.shape_id)
