"""Structural chair families. Each draws its own proportions from the RNG and fills a TreeBuilder.

Families: four_leg, four_leg_stretchers, armchair_bars, spindle_back, office, pedestal, sled,
stool, bar_stool, sofa. Continuous variation: proportions, leg profile (round, square, tapered,
blade), splay, back tilt and curvature, seat thickness, cushion bevels, number of slats. Each family
marks the members a chair of its make could do without (``TreeBuilder.optional``), for the chair
varieties that vary the make.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from brokenchairs.generation.shapes.procedural import components as c
from brokenchairs.generation.shapes.procedural.primitives import bar, circle, polyline, rect, ring, rounded_rect, slab

Rng = np.random.Generator


def _seat(rng: Rng, height=(0.42, 0.50), width=(0.40, 0.54), depth=(0.38, 0.50), thick=(0.02, 0.06), soft=False) -> c.Seat:
    t = rng.uniform(*thick)
    return c.Seat(
        height=rng.uniform(*height),
        width=rng.uniform(*width),
        depth=rng.uniform(*depth),
        thickness=t,
        bevel=rng.uniform(0.3, 0.45) * t if soft else rng.uniform(0.0, 0.3) * t,
        corner=rng.uniform(0.0, 0.06),
    )


def _back(rng: Rng, seat: c.Seat, height=(0.32, 0.55), tilt=(0.0, 0.28), lift=0.0, thick=(0.015, 0.04)) -> c.Back:
    return c.Back(
        width=seat.width * rng.uniform(0.85, 1.0),
        height=rng.uniform(*height),
        thickness=rng.uniform(*thick),
        tilt=rng.uniform(*tilt),
        curvature=rng.choice([0.0, rng.uniform(0.1, 0.9)]),
        lift=lift,
    )


def _four_legs(b: c.TreeBuilder, rng: Rng, seat: c.Seat, top_z: float | None = None, splay=(0.0, 0.08)):
    base = b.path("chair_base", "regular_leg_base")
    r = rng.uniform(0.014, 0.025)
    inset = r + rng.uniform(0.0, 0.03)
    x, y = seat.width / 2 - inset, seat.depth / 2 - inset
    kind = str(rng.choice(c.LEG_PROFILES))
    legs = c.add_legs(b, base, [(-x, -y), (x, -y), (x, y), (-x, y)], seat.bottom if top_z is None else top_z, r, kind,
                      rng.uniform(*splay))
    return base, legs, r, inset


def four_leg(b: c.TreeBuilder, rng: Rng, stretchers: bool = False, arms: bool = False) -> None:
    seat = _seat(rng)
    c.add_seat(b, seat)
    base, legs, r, inset = _four_legs(b, rng, seat)
    if stretchers:
        c.add_stretchers(b, base, legs, str(rng.choice(["box", "H", "sides", "front_back_staggered"])),
                         rng.uniform(0.1, 0.2), r * rng.uniform(0.45, 0.7))
    if stretchers or rng.random() < 0.6:
        c.add_apron(b, seat, inset, rng.uniform(0.04, 0.09), rng.uniform(0.015, 0.025))
    style = str(rng.choice(["panel", "panel_posts", "slats", "ladder", "raised"]))
    lift = rng.uniform(0.06, 0.15) if style == "raised" else 0.0
    frame = c.add_back(b, seat, _back(rng, seat, lift=lift), style, rng, r * 0.9)
    if arms:
        c.add_bar_arms(b, seat, frame, rng.uniform(0.18, 0.26), rng.uniform(0.011, 0.018), pad=rng.random() < 0.5)
    else:
        b.optional(b.path("chair_back"), "back")  # backless: a four-legged stool


def spindle_back(b: c.TreeBuilder, rng: Rng) -> None:
    seat = _seat(rng, thick=(0.035, 0.06), depth=(0.40, 0.48))
    c.add_seat(b, seat, round_seat=rng.random() < 0.3)
    base, legs, r, _ = _four_legs(b, rng, seat, splay=(0.06, 0.14))
    c.add_stretchers(b, base, legs, str(rng.choice(["H", "box"])), rng.uniform(0.12, 0.2), r * 0.6)
    c.add_back(b, seat, _back(rng, seat, height=(0.4, 0.6), tilt=(0.1, 0.3), thick=(0.025, 0.04)), "spindles", rng, r * 0.8)


def office(b: c.TreeBuilder, rng: Rng) -> None:
    seat = _seat(rng, height=(0.44, 0.52), width=(0.46, 0.54), depth=(0.44, 0.5), thick=(0.06, 0.1), soft=True)
    c.add_seat(b, seat)
    support_h = rng.uniform(0.04, 0.07)
    support = slab((0, 0, seat.bottom - support_h / 2 + c.OVERLAP), (0.26, 0.24, support_h), 0.005, 0.01)
    b.leaf(b.path("chair_seat"), "seat_support", support)
    c.add_star_base(b, seat.bottom - support_h, 5, rng.uniform(0.28, 0.34), rng)
    lift = rng.uniform(0.05, 0.12)
    back = _back(rng, seat, height=(0.45, 0.65), tilt=(0.08, 0.25), lift=lift, thick=(0.04, 0.08))
    frame = c.BackFrame(seat, back)
    chair_back = b.path("chair_back")
    panel = frame.panel(lift, back.height, back.width * 0.95, back.thickness, back.thickness * 0.4)
    b.leaf(b.group(chair_back, "back_surface"), "back_single_surface", panel)
    # L-shaped connector from under the seat up into the back panel
    y_under = seat.depth / 2 + 0.03 + back.thickness / 2
    z_under = seat.bottom - support_h / 2
    top = frame.point(0.0, lift + 0.12, dy=back.thickness / 2)
    conn = polyline([(0, 0.0, z_under), (0, y_under, z_under), top], rounded_rect(0.06, 0.018, 0.006), 0.06)
    b.leaf(chair_back, "back_connector", conn)
    if rng.random() < 0.35:
        head = b.path("chair_head")
        z_top = back.height + rng.uniform(0.06, 0.1)
        hp = frame.point(0, z_top)
        b.leaf(head, "headrest", slab(hp, (back.width * 0.55, back.thickness * 0.9, 0.09), 0.015, 0.03))
        b.leaf(head, "head_connector", bar(frame.point(0, back.height - 0.05), frame.point(0, z_top), rect(0.03, 0.012)))
    if rng.random() < 0.6:
        c.add_bar_arms(b, seat, frame, rng.uniform(0.2, 0.26), 0.014, pad=True)


def pedestal(b: c.TreeBuilder, rng: Rng) -> None:
    round_seat = rng.random() < 0.5
    seat = _seat(rng, thick=(0.03, 0.07), soft=rng.random() < 0.5)
    c.add_seat(b, seat, round_seat=round_seat)
    c.add_pedestal(b, seat.bottom, rng.uniform(0.2, 0.27), rng)
    style = "raised" if rng.random() < 0.5 else "panel"
    lift = rng.uniform(0.05, 0.12) if style == "raised" else 0.0
    frame = c.add_back(b, seat, _back(rng, seat, lift=lift), style, rng, 0.015)
    if rng.random() < 0.35:
        c.add_bar_arms(b, seat, frame, rng.uniform(0.18, 0.24), 0.013, pad=True)
    else:
        b.optional(b.path("chair_back"), "back")  # backless: a pedestal stool


def sled(b: c.TreeBuilder, rng: Rng) -> None:
    seat = _seat(rng)
    c.add_seat(b, seat)
    base = b.path("chair_base", "regular_leg_base")
    r = rng.uniform(0.009, 0.015)
    prof = circle(r, 12) if rng.random() < 0.6 else rounded_rect(2 * r, 2 * r, 0.3 * r)
    x = seat.width / 2 - rng.uniform(0.02, 0.05)
    y = seat.depth / 2 - 0.02
    spread = rng.uniform(0.0, 0.06)
    for s in (-1, 1):
        pts = [(s * x, -y, seat.bottom + c.OVERLAP), (s * (x + spread), -y - spread, r), (s * (x + spread), y + spread, r),
               (s * x, y, seat.bottom + c.OVERLAP)]
        b.leaf(base, "runner", polyline(pts, prof, rng.uniform(0.03, 0.08), hint=(1, 0, 0)))
    zb = seat.bottom - rng.uniform(0.03, 0.12)
    t = (seat.bottom - zb) / (seat.bottom - r)  # where the runners are at height zb
    xx = x + spread * t
    for yy in (-(y + spread * t), y + spread * t):
        b.leaf(base, "bar_stretcher", bar((-xx, yy, zb), (xx, yy, zb), circle(r * 0.8, 10)))
    style = str(rng.choice(["panel", "raised", "panel_posts"]))
    c.add_back(b, seat, _back(rng, seat, lift=rng.uniform(0.06, 0.12) if style == "raised" else 0.0), style, rng, r)


def stool(b: c.TreeBuilder, rng: Rng, bar_height: bool = False) -> None:
    height = (0.68, 0.80) if bar_height else (0.42, 0.50)
    round_seat = rng.random() < 0.7
    seat = _seat(rng, height=height, width=(0.32, 0.42), depth=(0.32, 0.42), thick=(0.025, 0.06), soft=rng.random() < 0.4)
    c.add_seat(b, seat, round_seat=round_seat)
    base = b.path("chair_base", "regular_leg_base")
    n = 4 if bar_height or rng.random() < 0.6 else 3
    r = rng.uniform(0.012, 0.022)
    inset = r + rng.uniform(0.01, 0.04)
    rad = seat.width / 2 - inset
    a0 = np.pi / 4 if n == 4 else np.pi / 2
    xy = [(rad * np.cos(a0 + 2 * np.pi * k / n), rad * np.sin(a0 + 2 * np.pi * k / n)) for k in range(n)]
    legs = c.add_legs(b, base, xy, seat.bottom, r, str(rng.choice(c.LEG_PROFILES)), rng.uniform(0.04, 0.14))
    if bar_height:
        z = rng.uniform(0.22, 0.3)
        rad_z = float(np.mean([np.hypot(*leg.at(z)[:2]) for leg in legs]))
        b.leaf(base, "bar_stretcher", ring((0, 0, z), rad_z, r * 0.7))
        if rng.random() < 0.5:
            c.add_back(b, seat, _back(rng, seat, height=(0.15, 0.28), tilt=(0.05, 0.2)), "raised" if rng.random() < 0.5 else "panel",
                       rng, r * 0.7)
    elif n == 4 and rng.random() < 0.7:
        c.add_stretchers(b, base, legs, "box", rng.uniform(0.12, 0.22), r * 0.6)
    elif n == 3:
        z = rng.uniform(0.12, 0.2)
        rad_z = float(np.mean([np.hypot(*leg.at(z)[:2]) for leg in legs]))
        b.leaf(base, "bar_stretcher", ring((0, 0, z), rad_z, r * 0.6))


def sofa(b: c.TreeBuilder, rng: Rng) -> None:
    foot_h = rng.uniform(0.03, 0.12)
    body_h = rng.uniform(0.14, 0.22)
    seat = _seat(rng, height=(0.0, 0.0), width=(0.5, 0.65), depth=(0.5, 0.62), thick=(0.08, 0.14), soft=True)
    seat = c.Seat(foot_h + body_h + seat.thickness, seat.width, seat.depth, seat.thickness, seat.bevel, seat.corner)
    c.add_seat(b, seat)
    arm_w = rng.uniform(0.1, 0.18)
    full_w = seat.width + 2 * arm_w
    support = slab((0, 0, foot_h + body_h / 2), (full_w - 0.01, seat.depth + 0.1, body_h), 0.01, 0.01)
    b.leaf(b.path("chair_seat"), "seat_support", support)
    back = c.Back(full_w - 0.02, rng.uniform(0.3, 0.5), rng.uniform(0.12, 0.2), rng.uniform(0.05, 0.2),
                  rng.choice([0.0, rng.uniform(0.1, 0.4)]))
    frame = c.BackFrame(seat, back)
    panel = frame.panel(-seat.thickness - 0.5 * body_h, back.height, back.width, back.thickness, back.thickness * 0.35)
    b.leaf(b.path("chair_back", "back_surface"), "back_single_surface", panel)
    c.add_sofa_arms(b, seat, foot_h + 0.02, seat.height + rng.uniform(0.12, 0.25), arm_w, seat.depth + 0.08,
                    rng.uniform(0.015, 0.05))
    feet = b.path("chair_base", "foot_base")
    fx, fy = full_w / 2 - 0.05, (seat.depth + 0.1) / 2 - 0.05
    kind = str(rng.choice(["round", "tapered_round", "square"]))
    prof, taper = c.member_profile(kind, rng.uniform(0.015, 0.03))
    for x, y in ((-fx, -fy), (fx, -fy), (fx, fy), (-fx, fy)):
        b.leaf(feet, "foot", bar((x, y, foot_h + c.OVERLAP + 0.01), (x, y, 0.0), prof, taper))


FAMILIES: dict[str, Callable[[c.TreeBuilder, Rng], None]] = {
    "four_leg": lambda b, r: four_leg(b, r),
    "four_leg_stretchers": lambda b, r: four_leg(b, r, stretchers=True),
    "armchair_bars": lambda b, r: four_leg(b, r, stretchers=r.random() < 0.5, arms=True),
    "spindle_back": spindle_back,
    "office": office,
    "pedestal": pedestal,
    "sled": sled,
    "stool": lambda b, r: stool(b, r),
    "bar_stool": lambda b, r: stool(b, r, bar_height=True),
    "sofa": sofa,
}
