"""Assign a material to each semantic part group of a shape (class priors in data_manifests).

The assignment maps group -> material name; every part of a group shares it (so the four legs of
a chair, or its two arms, always match). ``material_id`` is the assignment written compactly,
e.g. ``frame=wood-0-0005|seat=fabric-0-0013``: stable, readable, recorded per sample.
"""

from __future__ import annotations

import numpy as np

from brokenchairs.data_manifests import load_json
from brokenchairs.errors import InputError
from brokenchairs.generation.render.materials.library import Material
from brokenchairs.generation.shapes.shape import Shape


def label_groups() -> dict[str, str]:
    groups = load_json("material_priors.json")["groups"]
    return {label: g for g, spec in groups.items() for label in spec["labels"]}


def group_of(label: str, table: dict[str, str] | None = None) -> str:
    return (table or label_groups()).get(label, "default")


def assign_materials(shape: Shape, library: list[Material], rng: np.random.Generator) -> dict[str, str]:
    """group -> material name for the groups present in ``shape``."""
    if not library:
        raise InputError(None, "the material library is empty")
    priors = load_json("material_priors.json")["groups"]
    table = label_groups()
    by_class: dict[str, list[Material]] = {}
    for m in library:
        by_class.setdefault(m.cls, []).append(m)
    present = sorted({group_of(p.label, table) for p in shape.parts()})
    out = {}
    for g in present:
        classes = {c: w for c, w in priors[g]["classes"].items() if c in by_class}
        if not classes:  # the library lacks every preferred class: take any material
            pick = library[int(rng.integers(len(library)))]
        else:
            names = sorted(classes)
            p = np.array([classes[c] for c in names], float)
            cls = names[int(rng.choice(len(names), p=p / p.sum()))]
            pick = by_class[cls][int(rng.integers(len(by_class[cls])))]
        out[g] = pick.name
    return out


def material_id(assignment: dict[str, str]) -> str:
    return "|".join(f"{g}={m}" for g, m in sorted(assignment.items()))
