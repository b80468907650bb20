"""Render quality and cost of query images: production settings vs the naive default vs a reference.

Usage: python perf/bench_render.py [--procedural 2] [--real 2] [--views 1] [--repeats 3] [--ref-spp 1024]
                                   [--samples 16] [--unfiltered 16] [--threads 1] [--sheet docs/render-quality.png]
For procedural chairs and real PartNet chairs (../shared/data/partnet-chairs) with assigned
materials and a light preset, renders the same 256x256 query views with
  production   the default of `brokenchairs generate`: a 1/4-resolution ground pass, then the
               object's rectangle at --samples spp composited over it in linear light and denoised
               (OIDN, albedo + normal, prefilter and quality FAST), with the texture maps prefiltered
               for the camera (blender_scripts/query_materials.py); --samples 12,16,24 sweeps,
  unfiltered   (--unfiltered N) production at N spp with the map files as they are,
  flag-only    the best single-pass setting of the issue: full frame, 4 spp, Cycles' OIDN with
               prefilter and quality FAST, composited over white afterwards,
  naive        Cycles with its default OpenImageDenoise (prefilter ACCURATE, quality HIGH), 2 spp,
  masks-only   the 1-spp, undenoised object pass `generate` uses where only the object index is needed,
  reference    --ref-spp samples, one full-frame pass, no denoiser, another seed,
(flag-only, naive and the reference sample the map files as they are: the reference is the truth)
and prints per setting the median CPU-seconds per image (wall x threads, over --repeats), PSNR
over the chair's pixels (the reference's object mask) and over the whole image, the naive /
production cost ratio measured in this run, the share of wall time inside Blender's render
call, the object rectangle's share of the frame, and the per-variant scene set-up cost.
The default --threads 1 is how `generate` runs on a 2-core machine (2 workers x 1 thread).
Writes a side-by-side PNG (reference | production | flag-only | naive, per chair) with --sheet.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import brokenchairs.blender_scripts  # noqa: F401  (bpy before pymeshlab)
from brokenchairs.blender_scripts import scene as sc
from brokenchairs.blender_scripts.query_scene import QueryRenderer
from brokenchairs.generation.cameras import bbox_center, camera_for, intrinsics, query_viewpoint
from brokenchairs.generation.materials.assign import assign_materials
from brokenchairs.generation.materials.library import load_library, synth_library
from brokenchairs.generation.render_region import OBJECT_SAMPLES
from brokenchairs.generation.sources import load_ref, partnet_refs, procedural_refs

ROOT = Path(__file__).resolve().parents[1]
PARTNET = Path(os.environ.get("BROKENCHAIRS_PARTNET", ROOT.parent / "shared" / "data" / "partnet-chairs"))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = d[mask].mean() if mask is not None else d.mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


FULL_TEXTURES = ("flag-only", "naive", "reference")  # the textbook renders sample the map files as they are


def use_textures(r: QueryRenderer, prefiltered: bool, scene_args: tuple) -> None:
    """Switch between prefiltered maps (production) and the map files as they are."""
    if r.prefilter_textures != prefiltered:
        r.prefilter_textures = prefiltered
        r.set_parts(*scene_args)


def prefiltered(setting: str) -> bool:
    return not (setting in FULL_TEXTURES or setting.startswith("unfiltered"))


def render_setting(r: QueryRenderer, setting: str, K, w2c, ref_spp: int) -> dict:
    if setting.startswith(("production", "unfiltered")):
        r.samples = int(setting.split("@")[1])
        return r.render(K, w2c)
    if setting == "masks-only":
        return r.render(K, w2c, masks_only=True)
    if setting == "flag-only":
        return r.render_single_pass(K, w2c, 4, ("FAST", "FAST"))
    if setting == "naive":
        return r.render_single_pass(K, w2c, 2, ("ACCURATE", "HIGH"))
    if setting == "reference":  # another seed; its cost is not the point: all cores
        return r.render_single_pass(K, w2c, ref_spp, seed=1, threads=os.cpu_count())
    raise ValueError(setting)


def timed_render(r: QueryRenderer, setting: str, K, w2c, ref_spp: int) -> tuple[dict, float, float]:
    calls = [0.0]
    inner = sc.render

    def counting(*args, **kwargs):
        t = time.perf_counter()
        inner(*args, **kwargs)
        calls[0] += time.perf_counter() - t

    sc.render = counting
    try:
        t0 = time.perf_counter()
        out = render_setting(r, setting, K, w2c, ref_spp)
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
    ap.add_argument("--samples", default=str(OBJECT_SAMPLES), help="production spp, comma-separated to sweep")
    ap.add_argument("--unfiltered", default="", help="also production at these spp with the map files as they are "
                    "(no texture prefiltering), comma-separated")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sheet", type=Path, default=None, help="write a side-by-side PNG here")
    args = ap.parse_args()
    res = args.resolution
    lib_dir = Path("out/bench-render-materials")
    if not lib_dir.is_dir():
        list(synth_library(40, 0, lib_dir, 512))
    library = load_library(lib_dir)
    by_name = {m.name: m for m in library}
    refs = procedural_refs(args.procedural, 0) + (partnet_refs(PARTNET)[: args.real] if args.real else [])
    r = QueryRenderer(res, OBJECT_SAMPLES, "cpu", args.threads, True)
    K = intrinsics(res)
    productions = [f"production@{n}" for n in args.samples.split(",")]
    unfiltered = [f"unfiltered@{n}" for n in args.unfiltered.split(",")] if args.unfiltered else []
    settings = productions + unfiltered + ["flag-only", "naive", "masks-only", "reference"]
    rows = {s: {"cpu": [], "psnr_obj": [], "psnr_all": [], "share": []} for s in settings}
    setup, region_share, tiles = [], [], []
    for n, ref in enumerate(refs):
        shape = load_ref(ref)
        rng = np.random.default_rng(n)
        index_of = {p.node_id: k + 1 for k, p in enumerate(shape.parts())}
        t0 = time.perf_counter()
        light = int(rng.integers(4))
        r.set_light(light)
        r.prefilter_textures = True
        scene_args = (shape.parts(), index_of, assign_materials(shape, library, rng), by_name)
        r.set_parts(*scene_args)
        setup.append(time.perf_counter() - t0)
        for _ in range(args.views):
            w2c = camera_for(query_viewpoint(rng), bbox_center(shape.bounds))
            x0, y0, x1, y1 = r.region(K, w2c)
            region_share.append((x1 - x0) * (y1 - y0) / res**2)
            imgs = {}
            for s in settings:
                reps = 1 if s == "reference" else args.repeats
                use_textures(r, prefiltered(s), scene_args)  # not timed: a worker builds its materials once
                for _ in range(reps):
                    out, wall, inside = timed_render(r, s, K, w2c, args.ref_spp)
                    rows[s]["cpu"].append(wall * (args.threads if s != "reference" else os.cpu_count() or 1))
                    rows[s]["share"].append(inside / wall)
                imgs[s] = out
            ref_img, obj = imgs["reference"]["rgb"], imgs["reference"]["index"] > 0
            for s in settings:
                if "rgb" not in imgs[s]:  # masks-only renders make no image
                    continue
                rows[s]["psnr_obj"].append(psnr(imgs[s]["rgb"], ref_img, obj))
                rows[s]["psnr_all"].append(psnr(imgs[s]["rgb"], ref_img))
            tiles.append((ref.shape_id, imgs))
            print(f"  {ref.shape_id}: rectangle {region_share[-1]:.0%} of the frame; chair PSNR "
                  + ", ".join(f"{s} {rows[s]['psnr_obj'][-1]:.1f}" for s in settings if s not in ("reference", "masks-only")),
                  flush=True)
        r.clear()
    med = lambda v: statistics.median(v)  # noqa: E731
    print(f"\n{len(refs)} chairs ({args.procedural} procedural, {args.real} real) x {args.views} views, {res}x{res}, "
          f"{args.threads} thread(s), medians of {args.repeats} repetitions (reference: 1, {args.ref_spp} spp, all cores)")
    print(f"{'setting':14s} {'CPU-s/image':>11s} {'PSNR chair':>10s} {'PSNR whole':>10s} {'in render call':>14s}")
    for s in settings:
        v = rows[s]
        scored = s not in ("reference", "masks-only")
        print(f"{s:14s} {med(v['cpu']):11.3f} {med(v['psnr_obj']) if scored else float('nan'):10.1f} "
              f"{med(v['psnr_all']) if scored else float('nan'):10.1f} {med(v['share']):14.0%}")
    main_setting = f"production@{OBJECT_SAMPLES}" if f"production@{OBJECT_SAMPLES}" in rows else productions[0]
    print(f"naive / {main_setting} cost ratio (same run): {med(rows['naive']['cpu']) / med(rows[main_setting]['cpu']):.2f}x; "
          f"flag-only / {main_setting}: {med(rows['flag-only']['cpu']) / med(rows[main_setting]['cpu']):.2f}x")
    print(f"object rectangle: median {med(region_share):.0%} of the frame; scene set-up per variant "
          f"(parts, UVs, materials, light): median {med(setup):.2f} s wall")
    if args.sheet:
        from PIL import Image, ImageDraw

        from brokenchairs.generation.sheets import save_grid

        out_tiles = []
        for sid, imgs in tiles:
            for s in ("reference", main_setting, "flag-only", "naive"):
                im = Image.fromarray(imgs[s]["rgb"])
                ImageDraw.Draw(im).text((4, 4), s, fill=(0, 0, 160))
                out_tiles.append(im)
        save_grid(out_tiles, args.sheet, columns=4)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
