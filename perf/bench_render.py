"""Render quality and cost of query images: production settings vs the naive default vs a reference.

Usage: python perf/bench_render.py [--procedural 2] [--real 2] [--views 1] [--repeats 3] [--ref-spp 1024]
                                   [--samples 8] [--unfiltered 16] [--cycles-alpha 11] [--threads 1]
                                   [--sheet docs/render-quality.png]
For procedural chairs and real PartNet chairs (../shared/data/partnet-chairs) with assigned
materials and a light preset, renders the same 256x256 query views with
  production   the default of `brokenchairs generate`: a 1/4-resolution ground pass, then the
               object's rectangle at --samples spp composited over it in linear light and denoised
               (OIDN, albedo + normal, prefilter and quality FAST), with the texture maps prefiltered
               for the camera (blender_scripts/query_materials.py); --samples 8,9,10 sweeps,
  unfiltered   (--unfiltered N) production at N spp with the map files as they are,
  alpha        (--cycles-alpha N) production at N spp with the samples' own alpha on the
               silhouettes instead of generation/render/coverage.py's exact coverage,
  flag-only    the best single-pass setting of the issue: full frame, 4 spp, Cycles' OIDN with
               prefilter and quality FAST, composited over white afterwards,
  naive        Cycles with its default OpenImageDenoise (prefilter ACCURATE, quality HIGH), 2 spp,
  masks-only   the 1-spp, undenoised object pass `generate` uses where only the object index is needed,
  reference    --ref-spp samples, one full-frame pass, no denoiser, another seed, rendered once on
               every core in a child process and cached in --ref-cache (keyed by scene, view, spp),
(flag-only, naive and the reference sample the map files as they are: the reference is the truth)
and prints per setting the median CPU-seconds per image (wall x threads, over --repeats), PSNR
over the chair's pixels (the reference's object mask) and over the whole image, the naive /
production cost ratio measured in this run, the share of wall time inside Blender's render
call, the object rectangle's share of the frame, and the per-variant scene set-up cost.
The bench binds itself to --threads cores before importing bpy, as `generate` binds each worker
(the default --threads 1 is how it runs on a 2-core machine: 2 workers x 1 thread, each on its
own core). It runs alone: the pipeline figure, with every core busy, is perf/bench_generate.py's.
Writes a side-by-side PNG (reference | production | flag-only | naive, per chair) with --sheet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from brokenchairs.generation.pipeline.executor import drop_blender_script_paths
from brokenchairs.generation.render.render_settings import GROUND_SAMPLES, OBJECT_SAMPLES  # no bpy: imported before the pinning
from brokenchairs.shared_folder import write_atomic

ROOT = Path(__file__).resolve().parents[1]
PARTNET = Path(os.environ.get("BROKENCHAIRS_PARTNET", ROOT.parent / "shared" / "data" / "partnet-chairs"))
ALL_CPUS = sorted(os.sched_getaffinity(0))
REF_CACHE_VERSION = 1  # bump when the scene (materials, lights, geometry) renders differently


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = d[mask].mean() if mask is not None else d.mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


FULL_TEXTURES = ("flag-only", "naive")  # the textbook renders (and the reference) sample the map files as they are


def use_textures(r, prefiltered: bool, scene_args: tuple) -> None:
    """Switch between prefiltered maps (production) and the map files as they are."""
    if r.prefilter_textures != prefiltered:
        r.prefilter_textures = prefiltered
        r.set_parts(*scene_args)


def prefiltered(setting: str) -> bool:
    return not (setting in FULL_TEXTURES or setting.startswith("unfiltered"))


def render_setting(r, setting: str, K, w2c) -> dict:
    from brokenchairs.blender_scripts.query_probes import render_single_pass, render_view

    if setting.startswith(("production", "unfiltered", "alpha")):
        r.samples = int(setting.split("@")[1])
        r.exact_coverage = not setting.startswith("alpha")
        return render_view(r, K, w2c)
    if setting == "masks-only":
        return render_view(r, K, w2c, masks_only=True)
    if setting == "flag-only":
        return render_single_pass(r, K, w2c, 4, ("FAST", "FAST"))
    if setting == "naive":
        return render_single_pass(r, K, w2c, 2, ("ACCURATE", "HIGH"))
    raise ValueError(setting)


def timed_render(r, setting: str, K, w2c) -> tuple[dict, float, float]:
    from brokenchairs.blender_scripts import scene as sc

    calls = [0.0]
    inner = sc.render

    def counting(*args, **kwargs):
        t = time.perf_counter()
        inner(*args, **kwargs)
        calls[0] += time.perf_counter() - t

    sc.render = counting
    try:
        t0 = time.perf_counter()
        out = render_setting(r, setting, K, w2c)
        return out, time.perf_counter() - t0, calls[0]
    finally:
        sc.render = inner


def _ref_init(cpus: list[int]) -> None:
    os.sched_setaffinity(0, set(cpus))  # the reference process gets every core back, before bpy
    drop_blender_script_paths()  # this child inherited the sys.path of a parent that imported bpy
    _REF["threads"] = len(cpus)


_REF: dict = {}


def _ref_render(job: dict) -> dict:
    """One reference in the reference process: the job's scene, map files as they are, all cores."""
    import brokenchairs.blender_scripts  # noqa: F401  (bpy before pymeshlab)
    from brokenchairs.blender_scripts.query_probes import render_single_pass
    from brokenchairs.blender_scripts.query_scene import QueryRenderer
    from brokenchairs.generation.render.materials.library import load_library
    from brokenchairs.generation.shapes.sources import ShapeRef, load_ref

    if "renderer" not in _REF or _REF["res"] != job["resolution"]:
        _REF.update(renderer=QueryRenderer(job["resolution"], 1, "cpu", _REF["threads"], True, prefilter_textures=False),
                    res=job["resolution"])
        _REF["by_name"] = {m.name: m for m in load_library(Path(job["library"]))}
    r = _REF["renderer"]
    shape = load_ref(ShapeRef.from_json(job["ref"]))
    r.set_light(job["light"])
    r.set_parts(shape.parts(), {p.node_id: k + 1 for k, p in enumerate(shape.parts())}, job["assignment"],
                _REF["by_name"])
    out = render_single_pass(r, np.array(job["K"]), np.array(job["w2c"]), job["spp"], seed=1, threads=_REF["threads"])
    r.clear()
    return {"rgb": out["rgb"], "index": out["index"]}


def reference_images(jobs: list[dict], cache: Path) -> list[dict]:
    """The references of ``jobs``: from ``cache`` where rendered before, else rendered in a child
    process on every core (the bench itself is bound to --threads cores)."""
    cache.mkdir(parents=True, exist_ok=True)
    keys = [hashlib.sha256(json.dumps([REF_CACHE_VERSION, j], sort_keys=True).encode()).hexdigest()[:20] for j in jobs]
    todo = [(k, j) for k, j in zip(keys, jobs) if not (cache / f"{k}.npz").is_file()]
    if todo:
        print(f"rendering {len(todo)} reference(s) at {todo[0][1]['spp']} spp on {len(ALL_CPUS)} cores "
              f"(cached in {cache})", flush=True)
        with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_ref_init,
                                 initargs=(ALL_CPUS,)) as pool:
            for (k, _), img in zip(todo, pool.map(_ref_render, [j for _, j in todo])):
                write_atomic(cache / f"{k}.npz", lambda f, img=img: np.savez_compressed(f, **img))
    return [dict(np.load(cache / f"{k}.npz")) for k in keys]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procedural", type=int, default=2)
    ap.add_argument("--real", type=int, default=2)
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-spp", type=int, default=1024)
    ap.add_argument("--samples", default=str(OBJECT_SAMPLES), help="production spp, comma-separated to sweep")
    ap.add_argument("--ground-samples", type=int, default=GROUND_SAMPLES, help="spp of production's ground pass")
    ap.add_argument("--unfiltered", default="", help="also production at these spp with the map files as they are "
                    "(no texture prefiltering), comma-separated")
    ap.add_argument("--cycles-alpha", default="", help="also production at these spp with the samples' own alpha "
                    "instead of the exact coverage, comma-separated")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                    help="gpu: CUDA/OptiX for production and the textbook renders (the reference stays on the CPU)")
    ap.add_argument("--sheet", type=Path, default=None, help="write a side-by-side PNG here")
    ap.add_argument("--no-baselines", dest="baselines", action="store_false",
                    help="production (and --unfiltered) only: no flag-only, naive or masks-only renders")
    ap.add_argument("--ref-cache", type=Path, default=Path("out/bench-render-refs"),
                    help="references rendered before are read from here (keyed by scene, view and spp)")
    args = ap.parse_args()
    # Bound to --threads cores before bpy is imported, as a `generate` worker is: Blender sizes its
    # thread pool at import, and a pool wider than the render's threads spins on the idle core
    # (unpinned, a 1-thread render here used 2 cores' worth of CPU time).
    os.sched_setaffinity(0, set(ALL_CPUS[: args.threads]))
    import brokenchairs.blender_scripts  # noqa: F401  (bpy before pymeshlab)
    from brokenchairs.blender_scripts.query_scene import QueryRenderer
    from brokenchairs.dataset.cameras import bbox_center, camera_for, intrinsics, query_viewpoints
    from brokenchairs.generation.render.materials.assign import assign_materials
    from brokenchairs.generation.render.materials.library import load_library, synth_library
    from brokenchairs.generation.shapes.sources import load_ref, partnet_refs, procedural_refs

    res = args.resolution
    lib_dir = Path("out/bench-render-materials")
    if not lib_dir.is_dir():
        list(synth_library(40, 0, lib_dir, 512))
    library = load_library(lib_dir)
    by_name = {m.name: m for m in library}
    refs = procedural_refs(args.procedural, 0) + (partnet_refs(PARTNET)[: args.real] if args.real else [])
    K = intrinsics(res)
    productions = [f"production@{n}" for n in args.samples.split(",")]
    unfiltered = [f"unfiltered@{n}" for n in args.unfiltered.split(",")] if args.unfiltered else []
    alphas = [f"alpha@{n}" for n in args.cycles_alpha.split(",")] if args.cycles_alpha else []
    settings = productions + unfiltered + alphas + (["flag-only", "naive", "masks-only"] if args.baselines else [])
    rows = {s: {"cpu": [], "wall": [], "psnr_obj": [], "psnr_all": [], "share": []} for s in settings}
    # Each chair's light, materials, views and references, drawn once for all settings.
    scenes = []
    for n, ref in enumerate(refs):
        shape = load_ref(ref)
        rng = np.random.default_rng(n)
        light = int(rng.integers(4))
        assignment = assign_materials(shape, library, rng)
        cams = [camera_for(v, bbox_center(shape.bounds)) for v in query_viewpoints(rng, args.views)]
        jobs = [{"ref": ref.to_json(), "light": light, "assignment": assignment, "library": str(lib_dir.resolve()),
                 "K": K.tolist(), "w2c": np.asarray(c).tolist(), "spp": args.ref_spp, "resolution": res} for c in cams]
        scenes.append((ref.shape_id, shape, light, assignment, list(zip(cams, reference_images(jobs, args.ref_cache)))))
    setup, region_share = [], []
    tiles = [(sid, {"reference": reference}) for sid, *_, views in scenes for _, reference in views]
    # Each sample count renders in a renderer of its own, as a `generate` worker does: Cycles'
    # blue-noise pattern depends on the largest count a session has rendered (query_scene.prime).
    groups = [[s] for s in productions + unfiltered + alphas] + ([["flag-only", "naive", "masks-only"]] if args.baselines else [])
    for g, group in enumerate(groups):
        spp = int(group[0].split("@")[1]) if "@" in group[0] else OBJECT_SAMPLES
        r = QueryRenderer(res, spp, args.device, args.threads, True, ground_samples=args.ground_samples)
        tile = iter(tiles)
        for sid, shape, light, assignment, views in scenes:
            t0 = time.perf_counter()
            r.set_light(light)
            r.prefilter_textures = True
            scene_args = (shape.parts(), {p.node_id: k + 1 for k, p in enumerate(shape.parts())}, assignment, by_name)
            r.set_parts(*scene_args)
            if g == 0:
                setup.append(time.perf_counter() - t0)
            for w2c, reference in views:
                if g == 0:
                    x0, y0, x1, y1 = r.region(K, w2c)
                    region_share.append((x1 - x0) * (y1 - y0) / res**2)
                imgs = next(tile)[1]
                for s in group:
                    use_textures(r, prefiltered(s), scene_args)  # not timed: a worker builds its materials once
                    for _ in range(args.repeats):
                        out, wall, inside = timed_render(r, s, K, w2c)
                        rows[s]["cpu"].append(wall * args.threads)
                        rows[s]["wall"].append(wall)
                        rows[s]["share"].append(inside / wall)
                    imgs[s] = out
                ref_img, obj = reference["rgb"], reference["index"] > 0
                scored = [s for s in group if "rgb" in imgs[s]]  # masks-only renders make no image
                for s in scored:
                    rows[s]["psnr_obj"].append(psnr(imgs[s]["rgb"], ref_img, obj))
                    rows[s]["psnr_all"].append(psnr(imgs[s]["rgb"], ref_img))
                print(f"  {sid}: chair PSNR " + ", ".join(f"{s} {rows[s]['psnr_obj'][-1]:.1f}" for s in scored), flush=True)
            r.clear()
    med = lambda v: statistics.median(v)  # noqa: E731
    print(f"\n{len(refs)} chairs ({args.procedural} procedural, {args.real} real) x {args.views} views, {res}x{res}, "
          f"{args.device}, {args.threads} thread(s) on as many cores, medians of {args.repeats} repetitions; reference: {args.ref_spp} spp, "
          f"another seed, no denoiser; production's ground pass at {args.ground_samples} spp")
    print(f"{'setting':14s} {'CPU-s/image':>11s} {'images/s':>8s} {'PSNR chair':>10s} {'PSNR whole':>10s} {'in render call':>14s}")
    for s in settings:
        v = rows[s]
        scored = s != "masks-only"
        print(f"{s:14s} {med(v['cpu']):11.3f} {1 / med(v['wall']):8.2f} {med(v['psnr_obj']) if scored else float('nan'):10.1f} "
              f"{med(v['psnr_all']) if scored else float('nan'):10.1f} {med(v['share']):14.0%}")
    main_setting = f"production@{OBJECT_SAMPLES}" if f"production@{OBJECT_SAMPLES}" in rows else productions[0]
    if args.baselines:
        print(f"naive / {main_setting} cost ratio (same run): {med(rows['naive']['cpu']) / med(rows[main_setting]['cpu']):.2f}x; "
              f"flag-only / {main_setting}: {med(rows['flag-only']['cpu']) / med(rows[main_setting]['cpu']):.2f}x")
    print(f"object rectangle: median {med(region_share):.0%} of the frame; scene set-up per variant "
          f"(parts, UVs, materials, light): median {med(setup):.2f} s wall")
    if args.sheet:
        from PIL import Image, ImageDraw

        from brokenchairs.generation.inspection.sheets import save_grid

        out_tiles = []
        for sid, imgs in tiles:
            for s in [x for x in ("reference", main_setting, "flag-only", "naive") if x in imgs]:
                im = Image.fromarray(imgs[s]["rgb"])
                ImageDraw.Draw(im).text((4, 4), s, fill=(0, 0, 160))
                out_tiles.append(im)
        save_grid(out_tiles, args.sheet, columns=4)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
