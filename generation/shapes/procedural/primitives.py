"""Watertight mesh primitives for procedural chairs, all built by one sweep.

``sweep`` moves a convex 2D profile along a 3D path (parallel-transport frames) and closes the
ends with fans (or joins them for closed paths): legs, bars, tapered and splayed legs, bevelled
cushions, curved backs, foot rings and wheels are all sweeps, so every leaf is closed and
consistently oriented (outward normals, positive volume) by construction.
"""

from __future__ import annotations

import numpy as np
import trimesh

from brokenchairs.generation.shapes.shape import make_mesh


# --- 2D profiles (counter-clockwise, convex) -----------------------------------------------------
def circle(radius: float, sides: int = 16) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    return radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def rounded_rect(width: float, height: float, radius: float, corner_steps: int = 3) -> np.ndarray:
    """A ``width`` x ``height`` rectangle centred at 0 with rounded corners (radius clipped to fit)."""
    r = float(min(radius, 0.499 * width, 0.499 * height))
    hw, hh = width / 2 - r, height / 2 - r
    pts = []
    for cx, cy, a0 in ((hw, hh, 0.0), (-hw, hh, 0.5 * np.pi), (-hw, -hh, np.pi), (hw, -hh, 1.5 * np.pi)):
        if r <= 0:
            pts.append((cx, cy))
            continue
        for a in np.linspace(a0, a0 + 0.5 * np.pi, corner_steps + 1):
            pts.append((cx + r * np.cos(a), cy + r * np.sin(a)))
    return np.array(pts)


def rect(width: float, height: float) -> np.ndarray:
    return rounded_rect(width, height, 0.0)


# --- the sweep -----------------------------------------------------------------------------------
def _frames(path: np.ndarray, hint: np.ndarray, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    n = len(path)
    if closed:
        tang = np.roll(path, -1, 0) - np.roll(path, 1, 0)
    else:
        tang = np.gradient(path, axis=0) if n > 2 else np.repeat(path[1:] - path[:1], n, 0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    normals = np.empty_like(path)
    h = np.asarray(hint, float)
    if abs(h @ tang[0]) > 0.99 * np.linalg.norm(h):
        h = np.array([0.0, 1.0, 0.0]) if abs(tang[0][1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    nrm = h - (h @ tang[0]) * tang[0]
    normals[0] = nrm / np.linalg.norm(nrm)
    for i in range(1, n):  # parallel transport: no twist along the path
        v = normals[i - 1] - (normals[i - 1] @ tang[i]) * tang[i]
        normals[i] = v / np.linalg.norm(v)
    return normals, np.cross(tang, normals)


def sweep(
    path: np.ndarray,
    profile: np.ndarray,
    scales: np.ndarray | float = 1.0,
    hint: np.ndarray = (0.0, 0.0, 1.0),
    closed: bool = False,
) -> trimesh.Trimesh:
    """Sweep a convex profile (m,2) along a path (n,3); ``scales`` (n,) or (n,2) per ring."""
    path = np.asarray(path, float)
    n, m = len(path), len(profile)
    sc = np.broadcast_to(np.asarray(scales, float).reshape(-1, 1) if np.ndim(scales) == 1 else scales, (n, 2))
    nrm, bin_ = _frames(path, np.asarray(hint, float), closed)
    rings = path[:, None, :] + (sc[:, None, 0:1] * profile[None, :, 0:1]) * nrm[:, None, :] + (
        sc[:, None, 1:2] * profile[None, :, 1:2]
    ) * bin_[:, None, :]
    verts = rings.reshape(-1, 3)
    j = np.arange(m)
    faces = []
    for i in range(n if closed else n - 1):
        a, b = i * m, ((i + 1) % n) * m
        faces.append(np.stack([a + j, a + (j + 1) % m, b + (j + 1) % m], 1))
        faces.append(np.stack([a + j, b + (j + 1) % m, b + j], 1))
    if not closed:
        c0, c1 = len(verts), len(verts) + 1
        verts = np.vstack([verts, path[0], path[-1]])
        last = (n - 1) * m
        faces.append(np.stack([np.full(m, c0), (j + 1) % m, j], 1))
        faces.append(np.stack([np.full(m, c1), last + j, last + (j + 1) % m], 1))
    mesh = make_mesh(verts, np.concatenate(faces))
    if mesh.volume < 0:
        mesh = make_mesh(mesh.vertices, mesh.faces[:, ::-1])
    return mesh


# --- shapes built from the sweep -------------------------------------------------------------------
def bar(p0, p1, profile: np.ndarray, taper: float = 1.0, hint=(1.0, 0.0, 0.0)) -> trimesh.Trimesh:
    """A straight member from p0 to p1; the p1 end is scaled by ``taper``."""
    return sweep(np.array([p0, p1], float), profile, np.array([1.0, taper]), hint=hint)


def slab(center, size, bevel: float = 0.0, corner: float = 0.0, steps: int = 2) -> trimesh.Trimesh:
    """A box ``size`` = (x, y, z) with rounded vertical edges and bevelled top/bottom edges."""
    cx, cy, cz = center
    sx, sy, sz = size
    bevel = min(bevel, 0.45 * sz, 0.3 * min(sx, sy))
    prof = rounded_rect(sx, sy, corner + bevel)
    if bevel <= 0:
        zs, sc = np.array([-sz / 2, sz / 2]), np.ones(2)
    else:
        # quarter-round bevels: rings inset along a circle arc at both ends
        t = np.linspace(0, 0.5 * np.pi, steps + 1)
        lo = -sz / 2 + bevel * (1 - np.sin(t))
        inset = bevel * (1 - np.cos(t))
        zs = np.concatenate([lo, -lo[::-1]])
        ins = np.concatenate([inset, inset[::-1]])
        sc = np.stack([(sx - 2 * ins) / sx, (sy - 2 * ins) / sy], 1)
    path = np.stack([np.full_like(zs, cx), np.full_like(zs, cy), cz + zs], 1)
    return sweep(path, prof, sc, hint=(1.0, 0.0, 0.0))


def disc(center, radius: float, thickness: float, sides: int = 32, bevel: float = 0.0) -> trimesh.Trimesh:
    """A vertical-axis cylinder (seat of a stool, pedestal plate), optionally bevelled."""
    cx, cy, cz = center
    b = min(bevel, 0.45 * thickness, 0.3 * radius)
    zs = np.array([-thickness / 2, -thickness / 2 + b, thickness / 2 - b, thickness / 2]) if b > 0 else np.array(
        [-thickness / 2, thickness / 2]
    )
    sc = np.array([1 - b / radius, 1, 1, 1 - b / radius]) if b > 0 else np.ones(2)
    path = np.stack([np.full(len(zs), cx), np.full(len(zs), cy), cz + zs], 1)
    return sweep(path, circle(radius, sides), sc, hint=(1.0, 0.0, 0.0))


def ring(center, radius: float, tube: float, sides: int = 48) -> trimesh.Trimesh:
    """A horizontal torus (the foot ring of a bar stool)."""
    a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    path = np.stack([center[0] + radius * np.cos(a), center[1] + radius * np.sin(a), np.full(sides, center[2])], 1)
    return sweep(path, circle(tube, 12), hint=(0.0, 0.0, 1.0), closed=True)


def polyline(points, profile: np.ndarray, corner: float, steps: int = 4, hint=(0.0, 0.0, 1.0)) -> trimesh.Trimesh:
    """A member bent along a polyline with rounded corners (runners, back connectors, frames)."""
    pts = np.asarray(points, float)
    path = [pts[0]]
    for i in range(1, len(pts) - 1):
        a, b, c = pts[i - 1], pts[i], pts[i + 1]
        da, dc = (a - b) / np.linalg.norm(a - b), (c - b) / np.linalg.norm(c - b)
        r = min(corner, 0.45 * np.linalg.norm(a - b), 0.45 * np.linalg.norm(c - b))
        p0, p1 = b + da * r, b + dc * r
        for t in np.linspace(0, 1, steps + 1):  # quadratic Bezier through the corner
            path.append((1 - t) ** 2 * p0 + 2 * t * (1 - t) * b + t**2 * p1)
    path.append(pts[-1])
    path = np.array(path)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(path, axis=0), axis=1) > 1e-9])
    return sweep(path[keep], profile, hint=hint)


def transformed(mesh: trimesh.Trimesh, matrix: np.ndarray) -> trimesh.Trimesh:
    """A copy of ``mesh`` under a rigid 4x4 transform."""
    v = mesh.vertices @ matrix[:3, :3].T + matrix[:3, 3]
    return make_mesh(v, mesh.faces)


def rotation_x(angle: float, pivot) -> np.ndarray:
    """4x4 rotation about the x axis through ``pivot``."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.eye(4)
    m[1:3, 1:3] = [[c, -s], [s, c]]
    p = np.asarray(pivot, float)
    m[:3, 3] = p - m[:3, :3] @ p
    return m
