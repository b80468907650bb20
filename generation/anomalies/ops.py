"""The five anomaly operations (paper 3.1), each split into ``draw`` and ``apply``.

A "part" is a leaf, or (position, rotation, missing) an inner node of a chosen tree level, seen
through ``Shape.group_part``: its leaves move rigidly together or disappear together.

``draw(shape, part, rng, spec, pool)`` makes every random choice and returns plain JSON-able
params; ``apply(shape, part, params)`` is deterministic geometry from those params, so a record
replays bit for bit. ``apply`` returns the new shape and measurements used for perceptibility.
Untouched parts keep their mesh objects (and bytes); the result stays in the shape's frame.
"""

from __future__ import annotations

import numpy as np

from brokenchairs.generation.anomalies.geometry import (
    chamfer,
    extent,
    principal_axis,
    random_unit,
    rigid,
    rotation_matrix,
)
from brokenchairs.generation.anomalies.solid import Cutter, fracture
from brokenchairs.generation.shapes.shape import Part, Shape, make_mesh, sample_surface
from brokenchairs.generation.shapes.sources import ShapeRef, load_ref


def _choice(rng: np.random.Generator, weights: dict) -> str:
    keys = sorted(weights)
    p = np.array([weights[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _vec(x) -> list[float]:
    return [float(v) for v in np.ravel(x)]


# --- position ---------------------------------------------------------------------------------
def draw_position(shape: Shape, part: Part, rng, spec, pool=None) -> dict:
    s = spec["position"]
    mode = _choice(rng, s["modes"])
    direction = principal_axis(part.mesh, rng) * (1 if rng.random() < 0.5 else -1) if mode == "slide" else random_unit(rng)
    return {"mode": mode, "direction": _vec(direction), "offset": float(rng.uniform(*s["offset"]) * shape.diagonal)}


def apply_position(shape: Shape, part: Part, p: dict) -> tuple[Shape, dict]:
    move = lambda m: rigid(m, translation=np.asarray(p["direction"]) * p["offset"])  # noqa: E731
    return shape.map_subtree(part.node_id, move), {"new_mesh": move(part.mesh)}


# --- rotation ---------------------------------------------------------------------------------
def draw_rotation(shape: Shape, part: Part, rng, spec, pool=None) -> dict:
    angle = float(rng.uniform(*spec["rotation"]["angle_deg"])) * (1 if rng.random() < 0.5 else -1)
    return {"axis": _vec(random_unit(rng)), "angle_deg": angle, "pivot": _vec(part.mesh.centroid)}


def apply_rotation(shape: Shape, part: Part, p: dict) -> tuple[Shape, dict]:
    rot = rotation_matrix(np.asarray(p["axis"]), np.radians(p["angle_deg"]))
    turn = lambda m: rigid(m, rotation=rot, pivot=p["pivot"])  # noqa: E731
    return shape.map_subtree(part.node_id, turn), {"new_mesh": turn(part.mesh)}


# --- broken -----------------------------------------------------------------------------------
def draw_broken(shape: Shape, part: Part, rng, spec, pool=None) -> dict:
    s = spec["broken"]
    kind = _choice(rng, s["primitives"])
    center = sample_surface(part.mesh, 1, rng)[0]
    size = float(rng.uniform(*s["size"]) * extent(part.mesh).max())
    rot = rotation_matrix(random_unit(rng), float(rng.uniform(0, 2 * np.pi))) if kind == "cube" else np.eye(3)
    return {"primitive": kind, "center": _vec(center), "size": size, "rotation": [_vec(r) for r in rot]}


def apply_broken(shape: Shape, part: Part, p: dict) -> tuple[Shape, dict]:
    cutter = Cutter(p["primitive"], tuple(p["center"]), p["size"], tuple(tuple(r) for r in p["rotation"]))
    broken, removed, method = fracture(part.mesh, cutter)
    if len(broken.faces) == 0:
        return shape.without_part(part.node_id), {"new_mesh": None, "removed_fraction": 1.0, "method": method}
    return shape.with_part_mesh(part.node_id, broken), {"new_mesh": broken, "removed_fraction": removed, "method": method}


# --- swapped ----------------------------------------------------------------------------------
def draw_swapped(shape: Shape, part: Part, rng, spec, pool=None) -> dict:
    candidates = pool.candidates(part.label, exclude=shape.shape_id) if pool is not None else []
    if not candidates:
        return {"donor": None}
    ref, node_id = candidates[int(rng.integers(len(candidates)))]
    return {"donor": ref.to_json(), "donor_part_id": int(node_id)}


def fit_to_box(donor: Part, target: Part) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis scale and translation that map the donor's bounding box onto the target's."""
    d_lo, d_hi = donor.mesh.bounds
    t_lo, t_hi = target.mesh.bounds
    d_ext, t_ext = d_hi - d_lo, t_hi - t_lo
    scale = np.where(d_ext > 1e-9, t_ext / np.maximum(d_ext, 1e-12), 1.0)
    translation = (t_lo + t_hi) / 2 - scale * (d_lo + d_hi) / 2
    return scale, translation


def apply_swapped(shape: Shape, part: Part, p: dict) -> tuple[Shape, dict]:
    donor_shape = load_ref(ShapeRef.from_json(p["donor"]))
    donor = donor_shape.part(p["donor_part_id"])
    scale, translation = fit_to_box(donor, part)
    fitted = make_mesh(donor.mesh.vertices * scale + translation, donor.mesh.faces)
    return shape.with_part_mesh(part.node_id, fitted), {"new_mesh": fitted, "donor_path": donor.path_str}


# --- missing ----------------------------------------------------------------------------------
def draw_missing(shape: Shape, part: Part, rng, spec, pool=None) -> dict:
    return {}


def apply_missing(shape: Shape, part: Part, p: dict) -> tuple[Shape, dict]:
    return shape.without_part(part.node_id), {"new_mesh": None}


DRAW = {"position": draw_position, "rotation": draw_rotation, "broken": draw_broken, "swapped": draw_swapped,
        "missing": draw_missing}
APPLY = {"position": apply_position, "rotation": apply_rotation, "broken": apply_broken, "swapped": apply_swapped,
         "missing": apply_missing}


def rejection(kind: str, shape: Shape, part: Part, params: dict, info: dict, spec: dict) -> tuple[str | None, dict]:
    """(reason or None, measurements) for the perceptibility test of one variant."""
    diag = shape.diagonal
    samples = int(spec["perceptibility"]["samples"])
    if kind == "missing":
        size = float(np.linalg.norm(extent(part.mesh))) / diag
        return (None if size >= spec["missing"]["min_part_size"] else "part_too_small"), {"part_size": size}
    if kind == "broken":
        r = info["removed_fraction"]
        m = {"removed_fraction": r, "method": info["method"]}
        if r < spec["broken"]["min_removed_fraction"]:
            return "removed_too_little", m
        return (None if r <= spec["broken"]["max_removed_fraction"] else "removed_too_much"), m
    d = chamfer(part.mesh, info["new_mesh"], samples) / diag
    if kind == "swapped":
        return (None if d >= spec["swapped"]["min_chamfer"] else "donor_too_similar"), {"chamfer": d}
    return (None if d >= spec["perceptibility"]["min_chamfer"] else "change_too_small"), {"chamfer": d}
