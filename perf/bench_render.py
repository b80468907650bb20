"""Render quality and cost of query images: production settings vs the naive default vs a reference.

Usage: python perf/bench_render.py [--procedural 2] [--real 2] [--views 1] [--repeats 3] [--ref-spp 1024]
For procedural chairs and real PartNet chairs (../shared/data/partnet-chairs) with assigned
materials and a light preset, renders the same 256x256 query views with
  production   the default of `brokenchairs generate`: 4 spp, OIDN prefilter/quality FAST, full
               frame (also the best flag-only setting),
  region       `generate --render-region`: the same, but only the object's rectangle at full
               resolution and the ground from a 1/4-resolution pass,
  naive        Cycles with default OpenImageDenoise (prefilter ACCURATE, quality HIGH), 2 spp,
  masks-only   the 1-spp, undenoised pass `generate` uses where only the object index is needed,
  reference    --ref-spp samples, no denoiser, another seed,
and prints per setting the median CPU-seconds per image (wall x threads, over --repeats), PSNR
over the chair's pixels (the reference's object mask) and over the whole image, the naive /
production cost ratio measured in this run, the share of wall time inside Blender's render
call, the render region's share of the frame, and the per-variant scene set-up cost.
Writes docs/render-quality.png (reference | production | region | naive, per chair) with --sheet.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import brokenchairs.blender_scripts  # noqa: F401  (bpy before pymeshlab)
import bpy
from brokenchairs.blender_scripts import scene as sc
from brokenchairs.blender_scripts.query_scene import QueryRenderer
from brokenchairs.generation.cameras import bbox_center, camera_for, intrinsics, query_viewpoint
from brokenchairs.generation.materials.assign import assign_materials
from brokenchairs.generation.materials.library import load_library, synth_library
from brokenchairs.generation.render_region import hull_points, render_region
from brokenchairs.generation.sources import load_ref, partnet_refs, procedural_refs

ROOT = Path(__file__).resolve().parents[1]
PARTNET = Path(os.environ.get("BROKENCHAIRS_PARTNET", ROOT.parent / "shared" / "data" / "partnet-chairs"))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = d[mask].mean() if mask is not None else d.mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def configure(r: QueryRenderer, setting: str, ref_spp: int) -> dict:
    """Scene settings for one named setting; returns render() kwargs."""
    cyc = bpy.context.scene.cycles
    r.samples, r.denoise = 4, True
    cyc.denoising_prefilter, cyc.denoising_quality, cyc.seed = "FAST", "FAST", 0
    if setting == "naive":
        r.samples = 2
        cyc.denoising_prefilter, cyc.denoising_quality = "ACCURATE", "HIGH"
    elif setting == "reference":
        r.samples, r.denoise, cyc.seed = ref_spp, False, 1
    return {"masks_only": setting == "masks-only"}


def timed_render(r: QueryRenderer, K, w2c, region, kwargs) -> tuple[dict, float, float]:
    calls = [0.0]
    inner = sc.render

    def counting():
        t = time.perf_counter()
        inner()
        calls[0] += time.perf_counter() - t

    sc.render = counting
    try:
        t0 = time.perf_counter()
        out = r.render(K, w2c, region=region, **kwargs)
        return out, time.perf_counter() - t0, calls[0]
    finally:
        sc.render = inner


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procedural", type=int, default=2)
    ap.add_argument("--real", type=int, default=2)
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-spp", type=int, default=1024)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--sheet", type=Path, default=None, help="write a side-by-side PNG here")
    args = ap.parse_args()
    res = args.resolution
    lib_dir = Path("out/bench-render-materials")
    if not lib_dir.is_dir():
        list(synth_library(40, 0, lib_dir, 512))
    library = load_library(lib_dir)
    by_name = {m.name: m for m in library}
    refs = procedural_refs(args.procedural, 0) + (partnet_refs(PARTNET)[: args.real] if args.real else [])
    r = QueryRenderer(res, 4, "cpu", args.threads, True)
    K = intrinsics(res)
    settings = ["production", "region", "naive", "masks-only", "reference"]
    rows = {s: {"cpu": [], "psnr_obj": [], "psnr_all": [], "share": []} for s in settings}
    setup, region_share, tiles = [], [], []
    for n, ref in enumerate(refs):
        shape = load_ref(ref)
        rng = np.random.default_rng(n)
        index_of = {p.node_id: k + 1 for k, p in enumerate(shape.parts())}
        t0 = time.perf_counter()
        light = int(rng.integers(4))
        r.set_light(light)
        r.set_parts(shape.parts(), index_of, assign_materials(shape, library, rng), by_name)
        setup.append(time.perf_counter() - t0)
        hull = hull_points(np.concatenate([p.mesh.vertices for p in shape.parts()]))
        for _ in range(args.views):
            w2c = camera_for(query_viewpoint(rng), bbox_center(shape.bounds))
            region = render_region(hull, K, w2c, res)
            region_share.append((region[2] - region[0]) * (region[3] - region[1]) / res**2)
            imgs = {}
            for s in settings:
                kwargs = configure(r, s, args.ref_spp)
                reps = 1 if s == "reference" else args.repeats
                for _ in range(reps):
                    out, wall, inside = timed_render(r, K, w2c, region if s in ("region", "masks-only") else None, kwargs)
                    rows[s]["cpu"].append(wall * args.threads)
                    rows[s]["share"].append(inside / wall)
                imgs[s] = out
            ref_img, obj = imgs["reference"]["rgb"], imgs["reference"]["index"] > 0
            for s in settings:
                rows[s]["psnr_obj"].append(psnr(imgs[s]["rgb"], ref_img, obj))
                rows[s]["psnr_all"].append(psnr(imgs[s]["rgb"], ref_img))
            tiles.append((ref.shape_id, imgs))
            print(f"  {ref.shape_id}: region {region_share[-1]:.0%} of the frame; chair PSNR "
                  + ", ".join(f"{s} {rows[s]['psnr_obj'][-1]:.1f}" for s in settings if s != "reference"), flush=True)
        r.clear()
    med = lambda v: statistics.median(v)  # noqa: E731
    print(f"\n{len(refs)} chairs ({args.procedural} procedural, {args.real} real) x {args.views} views, {res}x{res}, "
          f"{args.threads} threads, medians of {args.repeats} repetitions (reference: 1)")
    print(f"{'setting':12s} {'CPU-s/image':>11s} {'PSNR chair':>10s} {'PSNR whole':>10s} {'in render call':>14s}")
    for s in settings:
        v = rows[s]
        print(f"{s:12s} {med(v['cpu']):11.3f} {med(v['psnr_obj']) if s != 'reference' else float('nan'):10.1f} "
              f"{med(v['psnr_all']) if s != 'reference' else float('nan'):10.1f} {med(v['share']):14.0%}")
    print(f"naive / production cost ratio (same run): {med(rows['naive']['cpu']) / med(rows['production']['cpu']):.1f}x; "
          f"production / region: {med(rows['production']['cpu']) / med(rows['region']['cpu']):.2f}x")
    print(f"render region: median {med(region_share):.0%} of the frame; scene set-up per variant "
          f"(parts, UVs, materials, light): median {med(setup):.2f} s wall")
    if args.sheet:
        from PIL import Image, ImageDraw

        from brokenchairs.generation.sheets import save_grid

        out_tiles = []
        for sid, imgs in tiles:
            for s in ("reference", "production", "region", "naive"):
                im = Image.fromarray(imgs[s]["rgb"])
                ImageDraw.Draw(im).text((4, 4), f"{s}", fill=(0, 0, 160))
                out_tiles.append(im)
        save_grid(out_tiles, args.sheet, columns=4)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
