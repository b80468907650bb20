"""Benchmark commands (train, eval, report, predict), added to the ``brokenchairs`` group in cli.py."""

from __future__ import annotations

from pathlib import Path

import click

from brokenchairs.benchmark.device import resolve_device
from brokenchairs.data_manifests.reference_controls import CONTROLS
from brokenchairs.models.registry import MODEL_NAMES  # plain data: no torch at CLI start-up

MODELS = ", ".join(MODEL_NAMES)

DEVICE = click.option("--device", default="auto", show_default=True,
                      help="cpu, cuda, cuda:N or auto (cuda when torch sees one).")


@click.command("train")
@click.option("--model", required=True, help=f"One of: {MODELS}.")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Dataset folder (queries + views).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--preset", default="paper", show_default=True, help="paper (section 5 defaults) or tiny (CPU smoke runs).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="JSON of options; --set and flags override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any option, e.g. --set lr=1e-4.")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Per process (per GPU under torchrun).")
@click.option("--lr", type=float, default=None)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=None,
              help="Steps between exact-resume checkpoints (RUN/last.pt) inside an epoch, so a kill -9 loses at most "
                   "that many; 0 = epoch ends only [default: the config's checkpoint_every].")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped (its saved config; "
                                            "with --epochs N, a finished run is extended to N epochs).")
@DEVICE
def train_cmd(model, data, out, preset, config_file, sets, epochs, batch_size, lr, workers, checkpoint_every, resume,
              device):
    """Train a model of Table 2 on a dataset's train split (DDP when started by torchrun).

    \b
    Example: brokenchairs train --model cmt --data data/ --out runs/cmt
             brokenchairs train --model cmt --data data/ --out runs/tiny --preset tiny
             torchrun --nproc_per_node 4 -m brokenchairs train --model cmt --data data/ --out runs/cmt
    RUN/last.pt is saved every --checkpoint-every steps, at each epoch end and on Ctrl-C (or SIGTERM);
    after any of these, or a kill -9, add --resume to continue exactly.
    """
    from brokenchairs.benchmark.config import resolve_config
    from brokenchairs.benchmark.train import train
    from brokenchairs.config import flags_given, parse_sets

    flags = flags_given(click.get_current_context(),
                        {k: k for k in ("epochs", "batch_size", "lr", "workers", "checkpoint_every")})
    cfg = resolve_config(model, preset, config_file, parse_sets(sets), flags)
    result = train(cfg, data, out, resume=resume, device=device, epochs=epochs if resume else None)
    if result.rank != 0:
        return
    if result.interrupted:
        click.echo(f"interrupted at step {result.steps}: checkpoint {out / 'last.pt'}; continue with --resume")
        raise SystemExit(130)
    rate = result.samples / max(result.seconds, 1e-9)
    click.echo(f"trained {cfg.model} for {result.epochs_done} epochs ({result.steps} steps, {rate:.2f} samples/s) -> {out}")


@click.command("eval")
@click.option("--model", default=None, help="Expected model, checked against the checkpoint.")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True)
@click.option("--data", type=click.Path(path_type=Path), required=True)
@click.option("--split", default="test", show_default=True, help="train, val, test, a comma list, or all.")
@click.option("--views", type=click.IntRange(min=1), default=20, show_default=True, help="Reference views per query.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--shuffle-references", is_flag=True,
              help="Pair each query with another shape's reference views (does the model use the reference?); "
                   "the same as --references shuffled.")
@click.option("--references", type=click.Choice(["own", *CONTROLS]), default="own", show_default=True,
              help="Each query's reference views: its own shape's; another test shape's (shuffled); or another "
                   "test shape's of its own procedural family (near-miss: does it compare part by part?).")
@click.option("--amp/--no-amp", default=True, show_default=True,
              help="bf16 autocast on CUDA and on CPUs with AMX (--no-amp: float32 everywhere).")
@DEVICE
def eval_cmd(model, checkpoint, data, split, views, out, batch_size, workers, shuffle_references, references, amp,
             device):
    """Score a checkpoint: metrics.json, predictions.csv, roc.png, examples.png.

    \b
    Example: brokenchairs eval --model cmt --checkpoint runs/cmt/last.pt --data data/ --out runs/cmt/eval
    """
    from brokenchairs.benchmark.evaluate import evaluate

    m = evaluate(checkpoint, data, out, model, split, views, resolve_device(device), batch_size, workers,
                 shuffle_references=shuffle_references, amp=amp, references=references)
    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    click.echo(f"{m['model']} on {m['n']} {split} queries: AUC {fmt(m['auc'])}  accuracy {fmt(m['accuracy'])}"
               + (f"  box AP50 {fmt(m['box_ap50'])}" if "box_ap50" in m else "")
               + (f"  viewpoint {fmt(m['viewpoint_accuracy'])}" if "viewpoint_accuracy" in m else "") + f" -> {out}")


@click.command("report")
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.md"), show_default=True)
def report_cmd(runs, out):
    """Table 2 across runs: RUN folders (their eval*/metrics.json) or metrics.json files.

    \b
    Example: brokenchairs report runs/*/eval --out table2.md
    """
    from brokenchairs.benchmark.report import report

    click.echo(report(list(runs), out), nl=False)
    click.echo(f"-> {out}")


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--replicates", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Bootstrap replicates over test shapes.")
@click.option("--by-reference-need", "by_need", is_flag=True,
              help="Also score the missing parts only the reference can settle (the photo shows a chair some "
                   "training chair's parts match) apart from those the photo can (reads A's dataset and loads "
                   "its training shapes: seconds for procedural chairs, longer for thousands of PartNet ones).")
def compare_cmd(a, b, replicates, by_need):
    """Two eval folders of the same queries: AUCs with 95% intervals, the paired difference A - B and,
    when B is A's checkpoint scored with --shuffle-references, how normal queries' scores move.

    A or B may name several eval folders of one model, comma-separated (checkpoints of several epochs
    or seeds): a checkpoint ensemble, each query scored by its mean rank over them.

    \b
    Example: brokenchairs compare runs/cmt/eval runs/cmt/eval-shuffled
             brokenchairs compare evals/cmt-e10,evals/cmt-e12 evals/resnet-e10,evals/resnet-e12
             brokenchairs compare runs/cmt/eval runs/cmt/eval-shuffled --by-reference-need
    """
    from brokenchairs.benchmark.compare import compare_evals

    def folders(arg: str) -> list[Path]:
        found = [Path(p) for p in comma_list(arg)]
        if not found:
            raise click.BadParameter(f"{arg!r} names no eval folder")
        return found

    click.echo(compare_evals(folders(a), folders(b), replicates, by_need), nl=False)


@click.command("predict")
@click.option("--mesh", type=click.Path(path_type=Path), required=True, help="Reference mesh of the object.")
@click.option("--up", type=click.Choice(["z", "y"]), default="z", show_default=True, help="Up axis of --mesh.")
@click.option("--image", "images", type=click.Path(path_type=Path), multiple=True, required=True, help="Repeatable.")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--views", type=click.IntRange(min=1), default=20, show_default=True)
@DEVICE
def predict_cmd(mesh, up, images, checkpoint, out, views, device):
    """Is there a shape anomaly in these photos of MESH, and where? Writes overlays + predictions.json.

    \b
    Models are trained on renders on white: remove a photo's background for reliable scores.
    Example: brokenchairs predict --mesh chair.obj --image a.jpg --image b.jpg --checkpoint cmt.pt --out pred/
    """
    from brokenchairs.benchmark.predict import predict

    for r in predict(mesh, list(images), checkpoint, out, up, views, resolve_device(device)):
        note = "" if r.white_background else "  (background is not white: scores may be unreliable)"
        box = f"  box {[round(v, 1) for v in r.box]}" if r.box else ""
        click.echo(f"{r.image}: {r.label} (score {r.score:.3f}){box}{note}")
    click.echo(f"-> {out / 'predictions.json'} and overlays")


@click.group("reproduce")
def reproduce_group():
    """Reproduce a table of the paper end to end (data, training, evaluation, report); resumable."""


@reproduce_group.command("table2")
@click.option("--preset", default="cpu", show_default=True,
              help="cpu (all types, two cores, about 90 minutes), cpu-missing (missing parts on 1,200 chairs, where CMT "
                   "beats the query-only model), cpu-missing-one-short (the same on chairs whose make varies), "
                   "cpu-missing-check-reference (cpu-missing, then three more epochs that teach CMT to check its "
                   "reference: it beats the query-only model and loses its lead with wrong references), "
                   "cpu-missing-late-wrong-reference (the same check in the last three of 12 epochs) or paper "
                   "(the full-size recipe, for a GPU node); each described in data_manifests/reproduce_presets.json.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--partnet", type=click.Path(path_type=Path), default=None,
              help="Real PartNet chairs for the out-of-domain rows [default: $BROKENCHAIRS_PARTNET, "
                   "else ../shared/data/partnet-chairs if present].")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="A dataset already generated (queries and views) to train and score on instead of generating "
                   "OUT/data; its test split is the unseen shapes.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Trainings side by side [default: the preset's].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A training option for every row, e.g. --set epochs=10: finished runs are extended to it; other "
                   "keys apply to trainings not yet started (a resumed run keeps its saved config).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Trainings per row, training seeds +0, +1, ... [default: the preset's, 1]: the report adds the "
                   "spread a second training shows; finished trainings are kept.")
@click.option("--score-epochs", default=None, metavar="E1,E2,...",
              help="Also score each training's checkpoints of these epochs (own and shuffled references): the report "
                   "adds each row's checkpoint ensemble over them [default: the preset's, none].")
@click.option("--rows", default=None, metavar="ROW1,ROW2,...",
              help="Train and score only these rows, e.g. resnet18-fpn,cmt [default: the preset's].")
@DEVICE
def reproduce_table2_cmd(preset, out, partnet, data, jobs, sets, device, seeds, score_epochs, rows):
    """Generate, train every row, evaluate on unseen shapes, write OUT/table2.md.

    \b
    Example: brokenchairs reproduce table2 --preset cpu --out runs/table2-cpu
             brokenchairs reproduce table2 --preset cpu --out runs/table2-cpu --set epochs=6   # then longer
             brokenchairs reproduce table2 --preset paper --out runs/table2-paper --device cuda
             brokenchairs reproduce table2 --preset cpu --out runs/table2-cpu --seeds 3   # each row 3 times
             brokenchairs reproduce table2 --preset cpu --data data/big --out runs/big --device cuda
             brokenchairs reproduce table2 --preset cpu --out runs/table2-cpu --set epochs=8 --score-epochs 4,6,8
    A second call skips what is done and resumes an interrupted training.
    """
    from brokenchairs.benchmark.reproduce import reproduce_table2
    from brokenchairs.config import parse_sets

    reproduce_table2(out, preset, partnet, jobs, echo=click.echo, sets=parse_sets(sets).values, device=device,
                     seeds=seeds, data=data, score_epochs=None if score_epochs is None else parse_epochs(score_epochs),
                     rows=None if rows is None else tuple(comma_list(rows)))


def comma_list(text: str) -> list[str]:
    """``a, b,,c`` -> ["a", "b", "c"]: the comma-separated values of an option or argument."""
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_epochs(text: str) -> tuple[int, ...]:
    """``--score-epochs 4,6,8`` -> (4, 6, 8); anything else is one line naming the option."""
    try:
        return tuple(int(t) for t in comma_list(text))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of epochs", param_hint="--score-epochs") from None


COMMANDS = (train_cmd, eval_cmd, report_cmd, compare_cmd, predict_cmd, reproduce_group)
