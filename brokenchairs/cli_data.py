"""Dataset commands: plan, generate, render-views, preview (added to the group in cli.py).

One config describes a dataset (``GenerateConfig``; ``ViewsConfig`` for render-views), filled by
the loader every command shares (``brokenchairs.config``): ``--config FILE`` (JSON with the same
names, e.g. ``{"num_shapes": 100, "anomalies": ["broken", "normal"], "resolution": 128}``) <
``--set key=value`` < a flag given on the command line.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import click
from click.core import ParameterSource

from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.data_manifests.chair_varieties import CHAIR_VARIETIES, DEFAULT_VARIETY
from brokenchairs.errors import InputError
from brokenchairs.extras import require_render
from brokenchairs.generation.render.render_settings import GROUND_SAMPLES, GROUND_SCALE, OBJECT_SAMPLES

ANOMALY_CHOICES = [*ANOMALY_TYPES, "normal", "all"]


def _execution_options(f):
    for opt in reversed([
        click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes [default: cores]."),
        click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local process pool, or a Ray cluster."),
        click.option("--address", default=None, help="Ray cluster address [default: start a local Ray instance]."),
        click.option("--num-shards", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Job arrays: split the shards among this many independent jobs..."),
        click.option("--shard-index", type=click.IntRange(min=0), default=0, show_default=True,
                     help="...and run only this one's share (e.g. $SLURM_ARRAY_TASK_ID)."),
        click.option("--pin/--no-pin", default=True, show_default=True,
                     help="Bind each local worker to its own cores (warm caches: 5-15% less CPU per query). --no-pin when "
                          "several runs share one machine without a cpuset each."),
    ]):
        f = opt(f)
    return f


CHAIR_VARIETY = click.option(
    "--chair-variety", type=click.Choice(list(CHAIR_VARIETIES)), default=DEFAULT_VARIETY, show_default=True,
    help="Procedural chairs: 'fixed' gives every chair of a family its full make; 'one-short' leaves one optional "
         "member (a stretcher, apron rail, slat, sofa arm, or the back of an armless chair) out of half the chairs "
         "that have one, so a missing part often leaves a make that normal chairs have.")


def _dataset_options(f):
    for opt in reversed([
        click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
                     help="JSON file of these options (and denoise, fov_deg); --set and flags override it."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Set any option of the dataset config, e.g. --set fov_deg=30; flags override it."),
        click.option("--shapes", "shapes_dir", type=click.Path(path_type=Path), help="PartNet-layout folder of shapes."),
        click.option("--num-shapes", type=click.IntRange(min=1), default=None, help="Procedural chairs [default: 8]."),
        CHAIR_VARIETY,
        click.option("--anomaly", "anomalies", type=click.Choice(ANOMALY_CHOICES), multiple=True, default=("all",),
                     show_default=True, help="Repeat for several; 'normal' renders normal shapes only."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Dataset folder."),
        click.option("--views-per-variant", type=click.IntRange(min=1, max=20), default=None,
                     help="Fixed views per variant [default: the paper's Table 1 law: anomaly 1-8, median 4; "
                          "normal 1-12, median 8]."),
        click.option("--resolution", type=int, default=256, show_default=True),
        click.option("--samples", type=click.IntRange(min=1), default=None,
                     help=f"Cycles samples per pixel of the object pass [default: {OBJECT_SAMPLES}; the ground "
                          f"pass: 1/{GROUND_SCALE} resolution, {GROUND_SAMPLES} spp]."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--shard-size", type=click.IntRange(min=1), default=64, show_default=True,
                     help="Queries per shard (expected)."),
        click.option("--twins", is_flag=True, help="Also keep each anomalous view's normal twin (same camera)."),
        click.option("--balance", type=click.Choice(["table1", "every-shape"]), default="table1", show_default=True,
                     help="Which anomaly types each shape gets: Table 1's share of shapes per type (about 56-60%% "
                          "of images anomalous), or every asked type on every shape."),
        click.option("--min-anomaly-pixels", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Keep an anomalous view only if the anomaly covers this many pixels at the rendered "
                          "resolution [0: 24 at 256x256, scaled by area]."),
        click.option("--split-ratios", default="0.78,0.07,0.15", show_default=True,
                     help="train,val,test shares of the shapes (paper: 138K/13K/26K images)."),
        click.option("--materials", "materials_dir", type=click.Path(path_type=Path), default=None,
                     help="SVBRDF library [default: a procedural one written to OUT/materials]."),
        click.option("--skip-broken", is_flag=True,
                     help="Leave out --shapes whose meshes cannot be loaded (each one is printed and recorded in "
                          "dataset.json) [default: refuse to start when any is broken]."),
    ]):
        f = opt(f)
    return f


# flag -> GenerateConfig field; the keys a --config file may add that choose the shapes instead
GENERATE_FLAGS = {"anomalies": "anomalies", "views_per_variant": "views_per_variant", "resolution": "resolution",
                  "samples": "samples", "seed": "seed", "shard_size": "shard_size", "twins": "twins",
                  "balance": "balance", "min_anomaly_pixels": "min_anomaly_pixels", "split_ratios": "split_ratios",
                  "materials_dir": "materials"}
SHAPE_KEYS = {"shapes": "shapes_dir", "num_shapes": "num_shapes", "skip_broken": "skip_broken",
              "chair_variety": "chair_variety"}
VIEWS_FLAGS = {"views": "views", "elevation": "elevation_deg", "resolution": "resolution", "stride": "stride"}


def _dataset_config(ctx: click.Context, opts: dict):
    """(GenerateConfig, opts): the config from --config < --set < explicit flags (``brokenchairs.config``);
    a file's shape keys (``shapes``, ``num_shapes``, ``skip_broken``) fill the options not given as flags."""
    from brokenchairs.config import coerce, flags_given, parse_sets, read_file, resolve, split_layer
    from brokenchairs.generation.pipeline.generate import GenerateConfig

    layers = []
    file = read_file(opts.pop("config_file"), "dataset config")
    if file is not None:
        shape_part, config_part = split_layer(file, set(SHAPE_KEYS))
        for key, value in shape_part.values.items():
            name = SHAPE_KEYS[key.replace("-", "_")]
            if ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
                kind = {"shapes_dir": str, "num_shapes": int, "skip_broken": bool, "chair_variety": str}[name]
                value = coerce(key, value, kind, file.source)
                opts[name] = Path(value) if name == "shapes_dir" else value
        layers.append(config_part)
    layers += [parse_sets(opts.pop("sets")), *flags_given(ctx, GENERATE_FLAGS)]
    cfg = resolve(GenerateConfig, layers, aliases={"anomaly": "anomalies"}, what="dataset option")
    return cfg, opts


def write_default_library(folder: Path, seed: int, size: int) -> None:
    """The procedural library, built in a temporary folder of this write (host, pid and a nonce in
    its name: array members that are all pid 1 in their containers never share one) and renamed
    into place; when another member got there first, its library (same seed, same maps) stays."""
    import shutil

    from brokenchairs.generation.render.materials.library import synth_library
    from brokenchairs.shared_folder import sweep, tmp_path

    folder.parent.mkdir(parents=True, exist_ok=True)
    sweep(folder.parent)  # libraries half-written by members that died
    tmp = tmp_path(folder)
    try:
        list(synth_library(40, seed, tmp, size))
        os.rename(tmp, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _setup(ctx, opts: dict, check_shapes: bool = True, workers: int | None = None):
    """(out, refs, GenerateConfig, skipped shapes) from options, every one checked (``check_shapes``:
    every mesh of --shapes loaded first, ``inventory.vet_refs``); writes nothing."""
    from brokenchairs.errors import check_int
    from brokenchairs.generation.render.materials.library import load_library
    from brokenchairs.generation.shapes.sources import partnet_refs, procedural_refs

    cfg, opts = _dataset_config(ctx, dict(opts))
    if opts["shapes_dir"] is not None and opts["num_shapes"] is not None:
        raise click.UsageError("give --shapes or --num-shapes, not both")
    out = Path(opts["out"])
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out is a file, not a folder")
    if opts["shapes_dir"] is not None:
        refs = partnet_refs(opts["shapes_dir"])
    else:
        refs = procedural_refs(check_int("--num-shapes", 8 if opts["num_shapes"] is None else opts["num_shapes"], 1),
                               opts["seed"], opts["chair_variety"])
    skipped = []
    if check_shapes:
        from tqdm import tqdm

        from brokenchairs.generation.shapes.inventory import vet_refs

        with tqdm(total=len(refs), desc="checking shapes", unit="shape", disable=None, leave=False) as bar:
            refs, skipped = vet_refs(refs, opts["skip_broken"], out, workers or os.cpu_count() or 1, bar.update)
        for s in skipped:
            click.echo(f"skipping broken shape {s['shape_id']}: {s['reason']}", err=True)
    if cfg.materials:
        load_library(cfg.materials)  # validate before anything is written or rendered
    # the default library lives in the dataset folder and is recorded relative to it, so the
    # members of a job array (each with its own folder) record one and the same config
    cfg = replace(cfg, materials=str(Path(cfg.materials).resolve()) if cfg.materials else "materials")
    return out, refs, cfg, skipped


def _default_library(out: Path, cfg) -> None:
    """Write the default material library into OUT (once; array members may race) and check it."""
    from brokenchairs.generation.render.materials.library import load_library

    folder = out / cfg.materials
    if cfg.materials == "materials":
        if not folder.is_dir():
            write_default_library(folder, cfg.seed, max(128, min(512, 2 * cfg.resolution)))
        load_library(folder)


@click.command("plan")
@_dataset_options
@click.option("--write", is_flag=True, help="Record the plan in OUT/dataset.json for later generate/array jobs.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Cores to estimate for [default: cores].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def plan_cmd(ctx, write, workers, as_json, **opts):
    """Print what generate would make (splits, units, views, shards) and how long it would take;
    writes nothing unless --write.

    \b
    Example: brokenchairs plan --num-shapes 8000 --out data/
             brokenchairs plan --config dataset.json --out data/ --write   # then array jobs run generate
    """
    _print_plan(ctx, opts, workers, write, as_json)


def _print_plan(ctx, opts: dict, workers: int | None, write: bool, as_json: bool) -> None:
    from brokenchairs.generation.pipeline.generate import plan, record_plan
    from brokenchairs.generation.pipeline.plan import summarize

    out, refs, cfg, skipped = _setup(ctx, opts, check_shapes=write, workers=workers)
    if write:
        units, tasks = record_plan(out, refs, cfg, skipped)
    else:
        units, tasks = plan(out, refs, cfg)
    summary = summarize(refs, units, tasks, cfg.resolution, cfg.samples, cfg.twins, views_per_shape=20,
                        split_ratios=cfg.split_ratios, split_seed=cfg.seed)
    if as_json:
        click.echo(json.dumps(summary.__dict__ | {"units": dict(summary.units)}, indent=1))
        return
    for line in summary.lines(workers or os.cpu_count() or 1):
        click.echo(line)
    click.echo("(estimate includes 20 reference views per shape)" + ("" if write else "; nothing written"))


@click.command("generate")
@_dataset_options
@_execution_options
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the plan and an estimate instead of rendering.")
@click.pass_context
def generate_cmd(ctx, workers, executor, address, num_shards, shard_index, pin, device, dry_run, **opts):
    """Photo-real anomalous and normal queries with masks, boxes and cameras, into HDF5 shards.

    \b
    Example: brokenchairs generate --num-shapes 8 --anomaly broken --out data/
             brokenchairs generate --shapes data_v0/ --anomaly all --out data/ --workers 8
             brokenchairs generate --config ds.json --out data/ --num-shards 100 --shard-index $SLURM_ARRAY_TASK_ID
             brokenchairs generate --config ds.json --out data/ --executor ray --address auto
    Re-running the same command skips complete shards (safe after a crash or kill -9).
    """
    from tqdm import tqdm

    from brokenchairs.generation.pipeline.generate import check_plan, generate
    from brokenchairs.generation.pipeline.plan import check_share

    if dry_run:
        _print_plan(ctx, opts, workers, write=False, as_json=False)
        return
    require_render("generate")
    out, refs, cfg, skipped = _setup(ctx, opts, workers=workers)
    check_share(num_shards, shard_index)
    check_plan(out, refs, cfg)  # the folder holds no other dataset: refused before anything is written
    _default_library(out, cfg)
    workers = workers or os.cpu_count() or 1
    bar = tqdm(desc="generate", unit="unit", disable=None)
    kept, rejected, images, t0 = [0], [0], [0], time.perf_counter()

    def progress(res):
        kept[0] += sum(res["kept"].values())
        rejected[0] += sum(v for k, v in res["rejections"].items() if not k.startswith("rejected:3d:"))
        images[0] += res["images_rendered"]
        bar.update(res["units"])
        bar.set_postfix(kept=kept[0], rejected=rejected[0], img_per_s=f"{images[0] / max(time.perf_counter() - t0, 1e-9):.2f}")

    stats = generate(out, refs, cfg, workers=workers, device=device, on_shard=progress, num_shards=num_shards,
                     shard_index=shard_index, executor=executor, address=address, pin=pin, skipped=skipped)
    bar.close()
    share = f" (share {shard_index} of {num_shards})" if num_shards > 1 else ""
    click.echo(f"{sum(stats.kept.values())} queries kept {dict(sorted(stats.kept.items()))} from {stats.images_rendered} "
               f"renders in {stats.seconds:.1f} s ({stats.shards_skipped}/{stats.shards_total} shards already complete){share}")
    rej = {k.removeprefix("rejected:"): v for k, v in sorted(stats.rejections.items())}
    if rej:
        click.echo(f"rejections: {rej}")


@click.command("render-views")
@click.option("--shapes", "shapes_dir", type=click.Path(path_type=Path), help="PartNet-layout folder of shapes.")
@click.option("--num-shapes", type=click.IntRange(min=1), help="Use this many procedural chairs (seeded by --seed).")
@CHAIR_VARIETY
@click.option("--mesh", type=click.Path(path_type=Path), help="One custom reference mesh (.obj/.glb/.ply/.stl/.off).")
@click.option("--up", type=click.Choice(["z", "y"]), default="z", show_default=True, help="Up axis of --mesh.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Dataset folder.")
@click.option("--views", type=int, default=20, show_default=True, help="Views per shape (azimuths).")
@click.option("--elevation", type=float, default=30.0, show_default=True, help="View elevation in degrees.")
@click.option("--resolution", type=int, default=256, show_default=True)
@click.option("--stride", type=int, default=8, show_default=True, help="Encoder patch stride.")
@click.option("--shard-size", type=click.IntRange(min=1), default=32, show_default=True, help="Shapes per shard.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the procedural chairs.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="JSON of the view options (views, elevation_deg, resolution, stride, fov_deg, radius); --set and "
                   "flags override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set any view option, e.g. --set fov_deg=30.")
@_execution_options
@click.pass_context
def render_views_cmd(ctx, shapes_dir, num_shapes, chair_variety, mesh, up, out, views, elevation, resolution, stride, shard_size, seed,
                     config_file, sets, workers, executor, address, num_shards, shard_index, pin):
    """Grayscale reference views with depth, poses and patch xyz, into view shards.

    \b
    Shapes: those recorded in OUT's dataset.json, else --shapes, --mesh, or procedural chairs.
    Example: brokenchairs render-views --num-shapes 8 --out data/ --views 20 --resolution 256
             brokenchairs render-views --mesh product.obj --up y --out product_views/
    """
    from tqdm import tqdm

    from brokenchairs.config import flags_given, parse_sets, read_file, resolve
    from brokenchairs.dataset.dataset_json import read_dataset
    from brokenchairs.generation.pipeline.plan import check_share
    from brokenchairs.generation.pipeline.reference_views import render_reference_views
    from brokenchairs.generation.units.tasks import ViewsConfig
    from brokenchairs.generation.shapes.sources import ShapeRef, load_ref, mesh_ref, partnet_refs, procedural_refs

    if sum(x is not None for x in (shapes_dir, num_shapes, mesh)) > 1:
        raise click.UsageError("give at most one of --shapes, --num-shapes, --mesh")
    require_render("render-views")
    layers = [read_file(config_file, "view config"), parse_sets(sets), *flags_given(ctx, VIEWS_FLAGS)]
    cfg = resolve(ViewsConfig, [x for x in layers if x is not None], what="view option")
    check_share(num_shards, shard_index)
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out is a file, not a folder")
    recorded = (read_dataset(out) or {}).get("shapes")
    if mesh is not None:
        refs = [mesh_ref(mesh, up)]
        load_ref(refs[0])  # fail on a bad mesh before anything is written
    elif shapes_dir is not None:
        refs = partnet_refs(shapes_dir)
    elif num_shapes is not None:
        refs = procedural_refs(num_shapes, seed, chair_variety)
    elif recorded:
        refs = [ShapeRef.from_json(r) for r in recorded]
    else:
        refs = procedural_refs(8, seed, chair_variety)
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(refs), desc="render-views", unit="shape", disable=None)

    def progress(result):
        bar.update(result["shapes"])
        bar.set_postfix(views_per_s=f"{result['views'] / max(result['seconds'], 1e-9):.1f}", shard=result["shard"])

    stats = render_reference_views(out, refs, cfg, workers=workers, shard_size=shard_size, on_shard=progress,
                                   num_shards=num_shards, shard_index=shard_index, executor=executor, address=address,
                                   pin=pin)
    bar.close()
    done = stats.shards_total - stats.shards_skipped
    click.echo(f"{stats.shapes} shapes, {stats.views} views in {done} shards ({stats.shards_skipped} already complete) "
               f"in {stats.seconds:.1f} s: {stats.views / max(stats.seconds, 1e-9):.1f} views/s -> {out}")


@click.command("preview")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write.")
@click.option("--type", "kind", type=click.Choice([*ANOMALY_TYPES, "normal"]),
              default=None, help="Only this type [default: a round-robin over types].")
@click.option("--n", type=click.IntRange(min=1), default=24, show_default=True)
@click.option("--columns", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--scale", type=click.IntRange(min=1, max=8), default=1, show_default=True, help="Upscale factor.")
def preview_cmd(dataset, out, kind, n, columns, scale):
    """Contact sheet of queries: mask_new red, mask_old green, box blue, reference view beside.

    \b
    Example: brokenchairs preview data/ --out sheet.png --type broken --n 12
    """
    from brokenchairs.generation.inspection.dataset_preview import dataset_sheet

    click.echo(f"wrote {out} ({dataset_sheet(dataset, out, kind, n, columns, scale)} queries)")


COMMANDS = (plan_cmd, generate_cmd, render_views_cmd, preview_cmd)
