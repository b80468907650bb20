"""Chair components (legs, stretchers, seats, backs, arms, bases) written into a part tree.

Frame while building: z up, metres, the seat centred at x = y = 0, front towards -y, back at +y.
Members overlap the parts they attach to by a few millimetres so no part floats.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import trimesh

from brokenchairs.generation.shapes.procedural.primitives import (
    bar,
    circle,
    disc,
    rect,
    rotation_x,
    rounded_rect,
    slab,
    sweep,
    transformed,
)
from brokenchairs.generation.shapes.shape import PartNode

OVERLAP = 0.006  # how far a member reaches into what it is attached to


class TreeBuilder:
    """Builds a PartNode tree with ids in creation order (deterministic).

    It also records which members a chair of this make could do without (``optional``): a
    stretcher, an apron rail, a slat, a sofa arm, the back of a chair without arms. A chair variety
    that varies the make leaves one of them out (``procedural.synth_chair``)."""

    def __init__(self) -> None:
        self._next_id = 0
        self.root = self._new("chair")
        self._optional: list[tuple[int, str, int]] = []  # (node id, group, members the group keeps)

    def optional(self, node: PartNode, group: str, at_least: int = 0) -> PartNode:
        """Mark ``node`` as one of ``group``'s members, of which a chair keeps at least ``at_least``."""
        self._optional.append((node.id, group, at_least))
        return node

    def removable(self) -> list[int]:
        """Node ids of the optional members one of which may be left out, in creation order."""
        count = Counter(g for _, g, _ in self._optional)
        return [i for i, g, at_least in self._optional if count[g] > at_least]

    def _new(self, label: str, mesh: trimesh.Trimesh | None = None) -> PartNode:
        node = PartNode(self._next_id, label, [], mesh)
        self._next_id += 1
        return node

    def node(self, parent: PartNode, label: str) -> PartNode:
        child = self._new(label)
        parent.children.append(child)
        return child

    def group(self, parent: PartNode, label: str) -> PartNode:
        """The child of ``parent`` with this label, created if missing (singleton groups)."""
        for c in parent.children:
            if c.label == label and c.children is not None and c.mesh is None:
                return c
        return self.node(parent, label)

    def leaf(self, parent: PartNode, label: str, mesh: trimesh.Trimesh) -> PartNode:
        child = self._new(label, mesh)
        parent.children.append(child)
        return child

    def path(self, *labels: str) -> PartNode:
        node = self.root
        for label in labels:
            node = self.group(node, label)
        return node


@dataclass(frozen=True)
class Seat:
    height: float  # top of the seat above the floor
    width: float  # x
    depth: float  # y
    thickness: float
    bevel: float
    corner: float

    @property
    def bottom(self) -> float:
        return self.height - self.thickness


def member_profile(kind: str, radius: float) -> tuple[np.ndarray, float]:
    """(profile, taper towards the floor) for a leg style."""
    if kind == "round":
        return circle(radius, 16), 1.0
    if kind == "square":
        return rect(2 * radius, 2 * radius), 1.0
    if kind == "tapered_round":
        return circle(radius, 16), 0.55
    if kind == "tapered_square":
        return rect(2 * radius, 2 * radius), 0.6
    if kind == "blade":
        return rounded_rect(2.4 * radius, 1.3 * radius, 0.3 * radius), 0.8
    raise ValueError(f"unknown leg profile {kind!r}")


LEG_PROFILES = ("round", "square", "tapered_round", "tapered_square", "blade")


# --- seats ------------------------------------------------------------------------------------------
def add_seat(b: TreeBuilder, seat: Seat, round_seat: bool = False) -> None:
    surface = b.path("chair_seat", "seat_surface")
    center = (0.0, 0.0, seat.height - seat.thickness / 2)
    if round_seat:
        mesh = disc(center, seat.width / 2, seat.thickness, sides=40, bevel=seat.bevel)
    else:
        mesh = slab(center, (seat.width, seat.depth, seat.thickness), seat.bevel, seat.corner)
    b.leaf(surface, "seat_single_surface", mesh)


def add_apron(b: TreeBuilder, seat: Seat, inset: float, height: float, thick: float) -> None:
    """Four seat_frame_bar rails under the seat, between the legs."""
    frame = b.path("chair_seat", "seat_frame")
    x, y = seat.width / 2 - inset, seat.depth / 2 - inset
    z = seat.bottom - height / 2 + OVERLAP
    prof = rect(height, thick)
    for p0, p1 in (((-x, -y, z), (x, -y, z)), ((-x, y, z), (x, y, z)), ((-x, -y, z), (-x, y, z)), ((x, -y, z), (x, y, z))):
        b.optional(b.leaf(frame, "seat_frame_bar", bar(p0, p1, prof, hint=(0, 0, 1))), "apron")


# --- legs and stretchers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leg:
    top: np.ndarray
    bottom: np.ndarray

    def at(self, z: float) -> np.ndarray:
        t = (self.top[2] - z) / (self.top[2] - self.bottom[2])
        return self.top + t * (self.bottom - self.top)


def add_legs(
    b: TreeBuilder, parent: PartNode, xy: list[tuple[float, float]], top_z: float, radius: float, kind: str, splay: float
) -> list[Leg]:
    prof, taper = member_profile(kind, radius)
    legs = []
    for x, y in xy:
        out = np.array([x, y]) / max(np.hypot(x, y), 1e-9)
        top = np.array([x, y, top_z + OVERLAP])
        bottom = np.array([x + out[0] * splay * top_z, y + out[1] * splay * top_z, 0.0])
        b.leaf(parent, "leg", bar(top, bottom, prof, taper))
        legs.append(Leg(top, bottom))
    return legs


def add_stretchers(b: TreeBuilder, parent: PartNode, legs: list[Leg], pattern: str, z: float, radius: float) -> None:
    """bar_stretcher members between four legs ordered front-left, front-right, back-right, back-left."""
    prof = circle(radius, 12)
    p = [leg.at(z) for leg in legs]
    if pattern == "box":
        pairs = [(p[0], p[1]), (p[1], p[2]), (p[2], p[3]), (p[3], p[0])]
    elif pattern == "sides":
        pairs = [(p[0], p[3]), (p[1], p[2])]
    elif pattern == "H":
        left_mid, right_mid = (p[0] + p[3]) / 2, (p[1] + p[2]) / 2
        pairs = [(p[0], p[3]), (p[1], p[2]), (left_mid, right_mid)]
    elif pattern == "front_back_staggered":
        q = [leg.at(z + 0.06) for leg in legs]
        pairs = [(p[0], p[3]), (p[1], p[2]), (q[0], q[1]), (q[3], q[2])]
    else:
        raise ValueError(f"unknown stretcher pattern {pattern!r}")
    for i, (a, c) in enumerate(pairs):
        member = b.leaf(parent, "bar_stretcher", bar(a, c, prof))
        if pattern != "H" or i == 2:  # an H's cross bar hangs from its sides: they stay while it does
            b.optional(member, "stretchers")


# --- backs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Back:
    width: float
    height: float  # above the seat top
    thickness: float
    tilt: float  # radians, top leaning backwards
    curvature: float  # y offset of the edges towards the front, per (half width)^2
    lift: float = 0.0  # gap between seat and back panel (bridged by connectors)


class BackFrame:
    """Local back coordinates (x across, z up from the seat's rear edge) mapped to the world."""

    def __init__(self, seat: Seat, back: Back):
        self.back = back
        self.pivot = np.array([0.0, seat.depth / 2 - back.thickness / 2, seat.height])
        self.matrix = rotation_x(-back.tilt, self.pivot)

    def curve_y(self, x: float | np.ndarray) -> np.ndarray:
        return -self.back.curvature * np.asarray(x) ** 2

    def point(self, x: float, z: float, dy: float = 0.0) -> np.ndarray:
        local = np.array([x, self.pivot[1] + float(self.curve_y(x)) + dy, self.pivot[2] + z, 1.0])
        return (self.matrix @ local)[:3]

    def place(self, mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        return transformed(mesh, self.matrix)

    def panel(self, z0: float, z1: float, width: float, thickness: float, round_: float) -> trimesh.Trimesh:
        xs = np.linspace(-width / 2, width / 2, 11)
        zc = self.pivot[2] + (z0 + z1) / 2
        path = np.stack([xs, self.pivot[1] + self.curve_y(xs), np.full_like(xs, zc)], 1)
        prof = rounded_rect(z1 - z0, thickness, round_)
        # end rings shrink a little: rounded side edges instead of a flat cut
        scales = np.ones((len(xs), 2))
        scales[[0, -1]] = [1 - 2 * round_ / (z1 - z0), 0.5]
        return self.place(sweep(path, prof, scales, hint=(0, 0, 1)))


def add_back(b: TreeBuilder, seat: Seat, back: Back, style: str, rng: np.random.Generator, post_r: float) -> BackFrame:
    """Back styles: panel, panel_posts, slats (vertical), ladder (horizontal), spindles, raised (connectors)."""
    f = BackFrame(seat, back)
    chair_back = b.path("chair_back")
    w, h, t = back.width, back.height, back.thickness
    post_prof = rect(2 * post_r, 2 * post_r) if rng.random() < 0.5 else circle(post_r, 12)
    if style in ("panel", "raised"):
        z0 = back.lift if style == "raised" else -seat.thickness * 0.5
        b.leaf(b.group(chair_back, "back_surface"), "back_single_surface", f.panel(z0, h, w, t, min(0.3 * t, 0.02)))
        if style == "raised":
            n = 1 if rng.random() < 0.4 else 2
            xs = [0.0] if n == 1 else [-0.3 * w, 0.3 * w]
            for x in xs:
                connector = bar(f.point(x, -seat.thickness / 2), f.point(x, back.lift + 0.05), post_prof)
                b.optional(b.leaf(chair_back, "back_connector", connector), "connectors", at_least=1)
        return f
    frame = b.group(chair_back, "back_frame")
    surface = b.group(chair_back, "back_surface")
    top0 = h - (rng.uniform(0.12, 0.3) * h if style != "spindles" else 0.07 * h)
    for x in (-w / 2 + post_r, w / 2 - post_r):
        if style == "spindles":
            continue
        b.leaf(frame, "back_frame_vertical_bar", bar(f.point(x, -seat.thickness * 0.6), f.point(x, h), post_prof))
    rail_h = h - top0
    xs = np.linspace(-w / 2, w / 2, 11)
    rail_path = np.array([f.point(x, (top0 + h) / 2) for x in xs])
    rail = sweep(rail_path, rounded_rect(rail_h, t, 0.3 * t), hint=f.matrix[:3, 2])
    b.leaf(frame, "back_frame_horizontal_bar", rail)
    if style == "slats" or style == "spindles":
        n = int(rng.integers(3, 8))
        inner = w / 2 - (3 * post_r if style == "slats" else 2 * post_r)
        prof = circle(0.45 * post_r, 10) if style == "spindles" else rect(rng.uniform(1.0, 3.0) * post_r, 0.6 * t)
        for x in np.linspace(-inner, inner, n):
            slat = bar(f.point(x, -seat.thickness * 0.4), f.point(x, top0 + 0.3 * rail_h), prof)
            b.optional(b.leaf(surface, "back_surface_vertical_bar", slat), "slats", at_least=1)
    elif style == "ladder":
        n = int(rng.integers(2, 4))
        slat_h = rng.uniform(0.04, 0.07)
        for z in np.linspace(0.25 * top0, 0.85 * top0, n):
            path = np.array([f.point(x, z) for x in np.linspace(-w / 2 + post_r, w / 2 - post_r, 9)])
            rail = sweep(path, rounded_rect(slat_h, 0.6 * t, 0.004), hint=f.matrix[:3, 2])
            b.optional(b.leaf(surface, "back_surface_horizontal_bar", rail), "slats", at_least=1)
    elif style == "panel_posts":
        b.leaf(surface, "back_single_surface", f.panel(0.15 * h, top0 + OVERLAP, w - 2 * post_r, 0.7 * t, 0.004))
    else:
        raise ValueError(f"unknown back style {style!r}")
    return f


# --- arms ------------------------------------------------------------------------------------------------
def add_bar_arms(b: TreeBuilder, seat: Seat, back: BackFrame, height: float, radius: float, pad: bool) -> None:
    """arm_near_vertical_bar from the seat up, arm_horizontal_bar from it into the back (each side)."""
    for side in (-1, 1):
        arm = b.node(b.root, "chair_arm")
        x = side * (seat.width / 2 - radius)
        y_front = -seat.depth / 2 + 0.06
        top = seat.height + height
        b.leaf(arm, "arm_near_vertical_bar", bar((x, y_front, seat.bottom + 0.01), (x, y_front, top), circle(radius, 12)))
        y_back = back.point(x, height)[1]
        if pad:
            mesh = slab((x, (y_front - 0.03 + y_back) / 2, top), (0.06, y_back - y_front + 0.03, 0.025), 0.006, 0.01)
        else:
            mesh = bar((x, y_front - 0.02, top), (x, y_back, top), circle(radius * 1.1, 12))
        b.leaf(arm, "arm_horizontal_bar", mesh)


def add_sofa_arms(b: TreeBuilder, seat: Seat, base_z: float, top: float, width: float, depth: float, bevel: float) -> None:
    for side in (-1, 1):
        arm = b.node(b.root, "chair_arm")
        cx = side * (seat.width / 2 + width / 2 - OVERLAP)
        b.leaf(arm, "arm_sofa_style", slab((cx, 0.0, (base_z + top) / 2), (width, depth, top - base_z), bevel, 0.01))
        b.optional(arm, "sofa_arms")


# --- bases ------------------------------------------------------------------------------------------------
def add_star_base(b: TreeBuilder, top_z: float, n_legs: int, reach: float, rng: np.random.Generator) -> None:
    base = b.path("chair_base", "star_leg_base")
    wheel_r = rng.uniform(0.022, 0.032)
    hub_z = 2 * wheel_r + rng.uniform(0.05, 0.09)
    col_r = rng.uniform(0.022, 0.032)
    b.leaf(base, "central_support", sweep(
        np.array([(0, 0, hub_z - 0.02), (0, 0, top_z * 0.55), (0, 0, top_z * 0.56), (0, 0, top_z + OVERLAP)]),
        circle(col_r, 20), np.array([1.45, 1.45, 1.0, 1.0]), hint=(1, 0, 0)))
    legs = b.node(base, "star_leg_set")
    leg_w = rng.uniform(0.035, 0.05)
    tip_z = 2 * wheel_r + 0.008
    phase = rng.uniform(0, 2 * np.pi / n_legs)
    for k in range(n_legs):
        a = phase + 2 * np.pi * k / n_legs
        d = np.array([np.cos(a), np.sin(a), 0.0])
        p0, p1 = np.array([0, 0, hub_z]), d * reach + [0, 0, tip_z]
        b.leaf(legs, "leg", bar(p0, p1, rounded_rect(leg_w, 0.035, 0.01), 0.7, hint=(0, 0, 1)))
    for k in range(n_legs):
        a = phase + 2 * np.pi * k / n_legs
        d = np.array([np.cos(a), np.sin(a), 0.0])
        caster = b.node(legs, "caster")
        tang = np.cross(d, [0, 0, 1])
        c = d * (reach - 0.01) + [0, 0, wheel_r]
        for s in (-1, 1):
            p = c + s * tang * 0.012
            b.leaf(caster, "wheel", bar(p - s * tang * 0.0115, p + s * tang * 0.011, circle(wheel_r, 16), hint=(0, 0, 1)))


def add_pedestal(b: TreeBuilder, top_z: float, radius: float, rng: np.random.Generator) -> None:
    base = b.path("chair_base", "pedestal_base")
    plate_h = rng.uniform(0.015, 0.04)
    if rng.random() < 0.5:  # flat disc
        plate = disc((0, 0, plate_h / 2), radius, plate_h, 40, bevel=plate_h * 0.4)
    else:  # tulip cone
        plate = sweep(np.array([(0, 0, 0), (0, 0, plate_h), (0, 0, 0.12)]), circle(radius, 40),
                      np.array([1.0, 0.93, 0.2]), hint=(1, 0, 0))
    b.leaf(base, "pedestal", plate)
    col_r = rng.uniform(0.025, 0.05)
    b.leaf(base, "central_support", bar((0, 0, plate_h * 0.5), (0, 0, top_z + OVERLAP), circle(col_r, 20), rng.uniform(0.7, 1.0)))
