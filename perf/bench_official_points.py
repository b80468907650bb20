"""The release's point visibility: our depth test (``official_points.visible``) against exact ray casts.

Usage: python perf/bench_official_points.py [--resolution 256] [--views 20] [--shapes 3] [--real 2] [--max-faces 20000]
For procedural and real PartNet chairs, renders the reference views in-process, samples the 2000
surface points as ``export-official`` does, and decides visibility two ways: our depth test and
render_multiview's rule (a ray from the camera to the point first hits the point; trimesh, no
embree). Prints, per rule: agreement with the ray casts, false/true-positive counts, co-visible
points per view pair (the authors' loader needs 32), the share of co-visible points whose pixel
in view a, unprojected with a's depth and projected into view b, lands within 2 px of the point's
pixel in b (what the pair means to VLFA), and the seconds each rule takes per shape.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import trimesh

from brokenchairs.blender_scripts.views import ViewRenderer
from brokenchairs.dataset.cameras import project, unproject_depth
from brokenchairs.generation.interop.official_points import pixel_rows_cols, surface_points, visible
from brokenchairs.generation.shapes.partnet import iter_shapes
from brokenchairs.generation.shapes.procedural import synth_chair
from brokenchairs.generation.units.tasks import ViewsConfig

ROOT = Path(__file__).resolve().parents[1]


def ray_cast_visible(caster, points: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    eye = np.linalg.inv(world_to_cam)[:3, 3]
    first = np.full(points.shape, np.inf)
    for s in range(0, len(points), 500):  # in chunks: trimesh's candidate lists grow with rays x faces
        chunk = points[s:s + 500]
        hit, ray, _ = caster.intersects_location(np.repeat(eye[None], len(chunk), 0), chunk - eye, multiple_hits=False)
        first[s + ray] = hit
    return np.linalg.norm(first - points, axis=1) < 1e-6


def consistent(vs, points: np.ndarray, vis: np.ndarray) -> tuple[list[int], float]:
    """Co-visible counts per ordered view pair and the share that reproject within 2 px through the depth."""
    counts, good, total = [], 0, 0
    worlds = [unproject_depth(vs.depth[k].astype(float), vs.K[k], vs.world_to_cam[k]) for k in range(vs.num_views)]
    for a, b in itertools.permutations(range(vs.num_views), 2):
        idx = np.where(vis[a] & vis[b])[0]
        counts.append(len(idx))
        ra = pixel_rows_cols(points[idx], vs.K[a], vs.world_to_cam[a])
        rb = pixel_rows_cols(points[idx], vs.K[b], vs.world_to_cam[b])
        X = worlds[a][ra[:, 0], ra[:, 1]]
        ok = ~np.isnan(X).any(1)
        uv, _ = project(X[ok], vs.K[b], vs.world_to_cam[b])
        good += int((np.abs(np.floor(uv[:, ::-1]) - rb[ok]).max(1) <= 2).sum())
        total += len(idx)
    return counts, good / max(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--views", type=int, default=20)
    ap.add_argument("--shapes", type=int, default=3, help="procedural chairs")
    ap.add_argument("--real", type=int, default=2, help="real PartNet chairs (from --partnet)")
    ap.add_argument("--max-faces", type=int, default=20000,
                    help="skip real chairs with more faces (trimesh's ray casts without embree take ~1 h for 45K)")
    ap.add_argument("--partnet", type=Path, default=ROOT.parent / "shared" / "data" / "partnet-chairs")
    args = ap.parse_args()

    cfg = ViewsConfig(views=args.views, resolution=args.resolution)
    renderer = ViewRenderer(cfg.resolution, cfg.stride, cfg.fov_deg)
    shapes = [("procedural", synth_chair(7, i)) for i in range(args.shapes)]
    if args.real and args.partnet.is_dir():
        real = (s for s in iter_shapes(args.partnet) if len(s.mesh().faces) <= args.max_faces)
        shapes += [("real", s) for s, _ in zip(real, range(args.real))]
    print(f"{args.resolution}x{args.resolution}, {args.views} views, 2000 points per shape", flush=True)
    print("| chair | rule | agreement | false vis. | missed vis. | co-visible per pair (min / median) | within 2 px | s / shape |")
    print("|---|---|---|---|---|---|---|---|")
    for source, shape in shapes:
        vs = renderer.render(shape, cfg.viewpoints())
        pts = surface_points(shape)
        t = time.perf_counter()
        caster = trimesh.ray.ray_triangle.RayMeshIntersector(shape.mesh())
        truth = np.stack([ray_cast_visible(caster, pts, vs.world_to_cam[k]) for k in range(vs.num_views)])
        t_ray = time.perf_counter() - t
        t = time.perf_counter()
        ours = np.stack([visible(pts, vs.depth[k], vs.K[k], vs.world_to_cam[k]) for k in range(vs.num_views)])
        t_depth = time.perf_counter() - t
        for rule, vis, secs in (("ray cast", truth, t_ray), ("depth test", ours, t_depth)):
            counts, share = consistent(vs, pts, vis)
            print(f"| {source} {shape.shape_id} | {rule} | {(vis == truth).mean():.3f} | {int((vis & ~truth).sum())} "
                  f"| {int((~vis & truth).sum())} | {min(counts)} / {int(np.median(counts))} | {share:.3f} | {secs:.2f} |", flush=True)


if __name__ == "__main__":
    main()
