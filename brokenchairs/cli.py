"""The ``brokenchairs`` command: a thin click layer over the library.

Bad input raises ``InputError``; the group turns it into one line on stderr and exit code 2.
Commands that need Blender import ``brokenchairs.blender_scripts`` lazily, so plain commands
start fast; they first check that the render extra is installed (``brokenchairs.extras``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.data_manifests.chair_varieties import CHAIR_VARIETIES, DEFAULT_VARIETY
from brokenchairs.errors import InputError
from brokenchairs.extras import require_render


class Group(click.Group):
    """A click group that reports bad input in one line and exits 2: InputError as
    ``error: <file>: <problem>``, a bad option of a command as ``error: <command>: <click's message>``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            click.echo(f"error: {where}: {exc.format_message()} (see {where} -h)", err=True)
            ctx.exit(2)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="brokenchairs")
def main() -> None:
    """Generate BrokenChairs-style anomaly datasets with Blender and benchmark models on them.

    \b
    Start with procedural chairs (nothing to download):
      brokenchairs shapes synth --count 24 --seed 0 --out chairs/
      brokenchairs shapes info chairs/
      brokenchairs shapes preview chairs/ --out sheet.png
    """


@main.group(cls=Group)
def shapes() -> None:
    """Part-annotated chair sources: make, inspect, preview and export shapes.

    \b
    Example: brokenchairs shapes synth --count 8 --out chairs/ && brokenchairs shapes info chairs/
    """


@shapes.command("synth")
@click.option("--count", type=click.IntRange(min=1), default=24, show_default=True, help="Chairs to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset seed; chair i depends on (seed, i) only.")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="Index of the first chair.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--chair-variety", type=click.Choice(list(CHAIR_VARIETIES)), default=DEFAULT_VARIETY, show_default=True,
              help="'one-short': half the chairs that have an optional member (stretcher, apron rail, slat, sofa arm, "
                   "an armless chair's back) lack one (data_manifests/chair_varieties.py).")
def shapes_synth(count: int, seed: int, start: int, out: Path, chair_variety: str) -> None:
    """Write procedural chairs in PartNet's data_v0 layout (y up, objs/ + result*.json).

    \b
    Example: brokenchairs shapes synth --count 50 --seed 1 --out chairs/
             brokenchairs shapes synth --count 50 --chair-variety one-short --out chairs-varied/
    """
    from tqdm import tqdm

    from brokenchairs.generation.shapes.procedural import synth_chairs

    t0 = time.perf_counter()
    for _ in tqdm(synth_chairs(count, seed, out, start, chair_variety), total=count, desc="chairs", unit="chair", disable=None):
        pass
    dt = time.perf_counter() - t0
    click.echo(f"wrote {count} chairs to {out} in {dt:.2f} s ({count / dt:.1f} chairs/s)")


def _check_folder(folder: Path, workers: int | None) -> list:
    """Every shape under ``folder`` loaded (a progress bar on a terminal); the broken ones."""
    import os

    from tqdm import tqdm

    from brokenchairs.generation.shapes.inventory import check_shapes, stray_folders
    from brokenchairs.generation.shapes.partnet import find_shape_dirs

    dirs = find_shape_dirs(folder)
    with tqdm(total=len(dirs), desc="loading meshes", unit="shape", disable=None, leave=False) as bar:
        broken = check_shapes(dirs, workers or os.cpu_count() or 1, bar.update)
    return stray_folders(folder) + broken


@shapes.command("info")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes loading meshes [default: cores].")
def shapes_info(folder: Path, as_json: bool, workers: int | None) -> None:
    """Table of shapes, families, parts per shape and the leaf-label histogram; loads every mesh and
    lists each broken shape with its reason (exit code 1 if any).

    \b
    Example: brokenchairs shapes info ../shared/data/partnet-chairs --json
    """
    from brokenchairs.generation.shapes.inventory import format_inventory, inventory

    inv = inventory(folder)
    broken = _check_folder(folder, workers)
    if as_json:
        click.echo(json.dumps(inv.summary() | {"broken": [b.__dict__ for b in broken]}, indent=1))
    else:
        click.echo(format_inventory(inv))
        click.echo(f"broken shapes    {len(broken)}")
        for b in broken:
            click.echo(f"  {b.line()}")
    if broken:
        raise SystemExit(1)


@shapes.command("check")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes loading meshes [default: cores].")
def shapes_check(folder: Path, workers: int | None) -> None:
    """Load every mesh of every shape; print each broken shape with its reason, exit code 1 if any.

    \b
    generate --shapes runs the same check first (and refuses broken shapes, or skips them with --skip-broken).
    Example: brokenchairs shapes check /path/to/PartNet/data_v0 --workers 16
    """
    from brokenchairs.generation.shapes.partnet import find_shape_dirs

    n = len(find_shape_dirs(folder))
    broken = _check_folder(folder, workers)
    for b in broken:
        click.echo(b.line())
    click.echo(f"{n} shapes checked, {len(broken)} broken", err=bool(broken))
    if broken:
        raise SystemExit(1)


@shapes.command("preview")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write.")
@click.option("--n", "limit", type=click.IntRange(min=1), default=24, show_default=True, help="Shapes to show.")
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True, help="Tile size in pixels.")
@click.option("--columns", type=click.IntRange(min=1), default=6, show_default=True)
def shapes_preview(folder: Path, out: Path, limit: int, size: int, columns: int) -> None:
    """Contact sheet rendered with Blender Workbench, parts coloured by label.

    \b
    Example: brokenchairs shapes preview chairs/ --out sheet.png --n 24
    """
    import itertools

    require_render("shapes preview")
    from brokenchairs.blender_scripts.preview import contact_sheet
    from brokenchairs.generation.shapes.partnet import find_shape_dirs, load_shape

    dirs = find_shape_dirs(folder)[:limit]
    shapes_ = [load_shape(d) for d in dirs]  # validate everything before rendering anything
    n = contact_sheet(itertools.islice(shapes_, limit), out, size=size, columns=columns)
    click.echo(f"wrote {out} ({n} shapes)")


@shapes.command("export")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help=".obj/.glb/.ply/.stl")
@click.option("--part", "node_id", type=int, default=None, help="Export only this leaf (PartNet node id).")
def shapes_export(folder: Path, out: Path, node_id: int | None) -> None:
    """Export one shape (normalised, z up) or one of its parts, keeping part names.

    \b
    Example: brokenchairs shapes export chairs/synth-0-00005 --out chair.glb
    """
    from brokenchairs.generation.shapes.export import export_shape
    from brokenchairs.generation.shapes.partnet import load_shape

    shape = load_shape(folder)
    if node_id is not None and node_id not in {p.node_id for p in shape.parts()}:
        raise InputError(folder, f"no leaf part with id {node_id}")
    click.echo(f"wrote {export_shape(shape, out, node_id)}")


@main.group(cls=Group)
def anomalies() -> None:
    """Anomaly engine debugging: apply one anomaly to one shape and look at it.

    \b
    Example: brokenchairs anomalies apply --shape chairs/synth-0-00003 --type broken --seed 3 --out out/ --preview
    """


@anomalies.command("apply")
@click.option("--shape", "shape_dir", type=click.Path(path_type=Path), required=True, help="One PartNet-layout shape.")
@click.option("--type", "kind", type=click.Choice(ANOMALY_TYPES), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--pool", "pool_dir", type=click.Path(path_type=Path), help="Shapes that supply donors for swapped.")
@click.option("--label", default=None, help="Only parts with this leaf label.")
@click.option("--part", "part_id", type=int, default=None, help="Exactly this node (a leaf, or an inner node).")
@click.option("--level", type=click.IntRange(min=1), default=None,
              help="Pick among nodes of this tree depth (1 = chair_back, chair_base, ...) instead of leaves.")
@click.option("--spec", "spec_file", type=click.Path(path_type=Path), default=None, help="Anomaly spec JSON.")
@click.option("--preview", is_flag=True, help="Also write preview.png: before/after, the part in red.")
def anomalies_apply(shape_dir, kind, seed, out, pool_dir, label, part_id, level, spec_file, preview):
    """Write the anomalous shape (PartNet layout, in the reference's frame) and record.json.

    \b
    The written shape is NOT re-normalised: load it with load_shape(dir, normalize=False).
    Example: brokenchairs anomalies apply --shape chairs/synth-0-00001 --type swapped --pool chairs/ --out out/
    """
    import json

    import numpy as np

    require_render("anomalies apply")  # the anomaly engine (manifold3d, pymeshlab); --preview renders
    if preview:
        import brokenchairs.blender_scripts  # noqa: F401  (bpy before pymeshlab, see blender_scripts/__init__.py)
    from brokenchairs.generation.anomalies import AnomalyFailed, DonorPool, load_spec, make_anomaly
    from brokenchairs.generation.shapes.partnet import load_shape, write_shape
    from brokenchairs.generation.shapes.sources import partnet_refs

    spec = load_spec(spec_file)
    shape = load_shape(shape_dir)
    pool = None
    if kind == "swapped":
        if pool_dir is None:
            raise click.UsageError("--type swapped needs --pool SHAPES_DIR to draw donors from")
        pool = DonorPool(partnet_refs(pool_dir))
    try:
        new_shape, record = make_anomaly(shape, kind, np.random.default_rng(seed), spec, pool, label, part_id, level)
    except AnomalyFailed as exc:
        raise InputError(shape_dir, str(exc)) from exc
    folder = write_shape(new_shape, out / f"{shape.shape_id}-{kind}-{seed}")
    (folder / "record.json").write_text(json.dumps(record.to_json(), indent=1))
    click.echo(f"{kind} on {record.part_path} (part {record.part_id}) after {record.attempts} draw(s): {folder}")
    if preview:
        from brokenchairs.blender_scripts.preview import before_after

        changed = shape.subtree_ids(record.part_id)
        click.echo(f"wrote {before_after(shape, new_shape, changed, folder / 'preview.png')}")


@main.group(cls=Group)
def materials() -> None:
    """SVBRDF material libraries: the built-in procedural one, or a folder of your own.

    \b
    Example: brokenchairs materials synth --count 400 --out materials/
    """


@materials.command("synth")
@click.option("--count", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=click.IntRange(min=16), default=512, show_default=True, help="Map resolution.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def materials_synth(count, seed, size, out):
    """Tileable procedural wood, plastic, leather, fabric and metal SVBRDFs (numpy only).

    \b
    Example: brokenchairs materials synth --count 40 --size 256 --out materials/
    """
    from tqdm import tqdm

    from brokenchairs.generation.render.materials.library import synth_library

    for _ in tqdm(synth_library(count, seed, out, size), total=count, desc="materials", disable=None):
        pass
    click.echo(f"wrote {count} materials to {out}")


def _add_commands() -> None:
    from brokenchairs import cli_bench, cli_data, cli_inspect

    for cmd in cli_data.COMMANDS + cli_inspect.COMMANDS + cli_bench.COMMANDS:
        main.add_command(cmd)


_add_commands()

if __name__ == "__main__":
    main()
