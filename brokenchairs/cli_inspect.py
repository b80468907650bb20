"""Commands that inspect, check, join and convert datasets: stats, validate, merge, import/export-official."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("stats")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--reference-need", "need_split", default=None, metavar="SPLIT",
              help="Also split SPLIT's missing-part queries by whether some training chair has exactly the parts "
                   "left, so only the reference can tell them from a normal chair (benchmark.reference_need), per "
                   "removed part label: what a shuffled-reference control can show, measured before any training.")
def stats_cmd(dataset, as_json, need_split):
    """The paper's Table 1 for DATASET, its split sizes and anomalies per part label.

    \b
    Example: brokenchairs stats data/
             brokenchairs stats data/ --reference-need test
    """
    from brokenchairs.generation.inspection.stats import dataset_stats, format_stats

    s = dataset_stats(dataset)
    if need_split is not None:
        from brokenchairs.benchmark.reference_need import missing_part_need, need_by_label

        rows = need_by_label(missing_part_need(dataset, need_split))
        s["reference_need"] = {"split": need_split, "by_label": [
            {"label": label, "needed": n, "queries": total} for label, n, total in rows]}
    click.echo(json.dumps(s, indent=1) if as_json else format_stats(s) + _format_need(s.get("reference_need")))


def _format_need(need: dict | None) -> str:
    if need is None:
        return ""
    rows = need["by_label"]
    needed, total = sum(r["needed"] for r in rows), sum(r["queries"] for r in rows)
    share = f"{100 * needed / total:.1f}%" if total else "-"
    lines = ["", f"missing parts of {need['split']} only the reference can tell (some training chair has the parts "
             f"left): {needed} of {total} queries ({share})", "| removed part | only the reference | queries |",
             "|---|---|---|"]
    lines += [f"| {r['label']} | {r['needed']} | {r['queries']} |" for r in rows]
    return "\n".join(lines)


@click.command("validate")
@click.argument("dataset", type=click.Path(path_type=Path))
def validate_cmd(dataset):
    """Check every shard against the schema and the manifest; exit 1 if anything is wrong.

    \b
    Example: brokenchairs validate data/
    """
    from brokenchairs.generation.inspection.validate import validate_dataset

    problems = validate_dataset(dataset)
    for path, problem in problems:
        click.echo(f"{path}: {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} problems in {dataset}", err=True)
        raise SystemExit(1)
    click.echo(f"{dataset}: valid")


@click.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def merge_cmd(sources, out):
    """Join the folders of job-array members (same plan) into OUT; rebuild its manifest.

    \b
    Example: brokenchairs merge part-*/ --out data/
    """
    from brokenchairs.generation.pipeline.merge import merge

    r = merge(list(sources), out)
    click.echo(f"{r['placed']} shards placed, {r['present']} already there, {r['missing']} missing -> {out}"
               + (f" (e.g. {', '.join(r['missing_names'])})" if r["missing"] else ""))
    if r["missing"]:
        raise SystemExit(1)


@click.command("export-official")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def export_official_cmd(dataset, folder):
    """Write DATASET in the layout of the released BrokenChairs-180K (images/, annotations/, shapes/, split.json),
    at its 256x256 (other resolutions are resampled), for the authors' data/dataset_e2e.py. FOLDER must be new or empty.

    \b
    Example: brokenchairs export-official data/ brokenchairs_release/
    """
    from brokenchairs.generation.interop.official_export import export_official

    n = export_official(dataset, folder)
    click.echo(f"exported {n['images']} images and {n['shapes']} reference shapes -> {folder}")
    if n["resampled_from"]:
        click.echo(f"note: resampled from {n['resampled_from']}x{n['resampled_from']} to the release's 256x256")


@click.command("import-official")
@click.argument("folder", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option("--resolution", type=int, default=None, help="Resize to this [default: the first image's size].")
@click.option("--shard-size", type=click.IntRange(min=1), default=256, show_default=True)
def import_official_cmd(folder, dataset, resolution, shard_size):
    """Convert a BrokenChairs-180K folder (the authors' release) into our shards.

    \b
    Example: brokenchairs import-official BrokenChairs-180K/ data/
    """
    from brokenchairs.generation.interop.official_import import import_official

    n = import_official(folder, dataset, resolution, shard_size)
    click.echo(f"imported {n['images']} images ({n['skipped']} skipped) and {n['shapes']} reference shapes -> {dataset}")
    for line in n["notes"][:10]:
        click.echo(f"note: {line}")


COMMANDS = (stats_cmd, validate_cmd, merge_cmd, export_official_cmd, import_official_cmd)
