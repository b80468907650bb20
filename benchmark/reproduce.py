"""``brokenchairs reproduce table2``: a scaled-down Table 2, end to end, resumable.

One recipe (``data_manifests/reproduce_presets.json``) drives the whole run through the CLI, so
every stage is exactly what a user would type:
1. ``generate`` procedural chairs (the recipe's anomaly kinds and balance: Table 1's by default) and
   ``render-views`` their references;
2. the same recipe on real PartNet chairs (``--partnet DIR``, else ``BROKENCHAIRS_PARTNET``, else
   ``../shared/data/partnet-chairs`` when present): the out-of-domain rows, every chair a test shape;
3. ``train`` every row of the recipe, ``jobs`` at a time, each on its own cores with its own
   thread count (one thread per job: on 2 cores two one-thread trainings side by side do more
   work than one two-thread training);
4. ``eval`` each row on the unseen test shapes, with shuffled references (view models), and out
   of domain; with ``score_epochs`` also the checkpoints of those epochs (test and shuffled), for
   the report's checkpoint ensembles. Each evaluation starts as soon as its checkpoint exists, on a
   slot a finished training freed (``benchmark.schedule``): beside the trainings still running;
5. ``table2.md`` (``benchmark.table2``): the rows with 95% intervals from a bootstrap over test
   shapes, CMT minus the query-only row with its paired interval, per-type AUC, the
   shuffled-reference drop, the real-chair rows, ROC curves and an examples sheet.

A second call skips what is done: generate/render-views skip complete shards; a training with a
``complete.json`` is skipped and one with a ``last.pt`` resumes; an evaluation with a
``metrics.json`` is skipped (a training extended by ``--set epochs=N`` is rescored at its new last
epoch; the scores of its earlier epochs' checkpoints stay valid and are kept). Each stage prints
one progress line and logs to ``OUT/logs/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from brokenchairs.benchmark.schedule import Task, run_tasks
from brokenchairs.benchmark.table2 import checkpoint_evals, row_model, seed_folder
from brokenchairs.data_manifests import load_json
from brokenchairs.errors import InputError
from brokenchairs.models.registry import REGISTRY

PRESETS_FILE = "reproduce_presets.json"
DEFAULT_PARTNET = Path("../shared/data/partnet-chairs")


@dataclass(frozen=True)
class Recipe:
    name: str
    shapes: int
    seed: int
    resolution: int
    samples: int
    views: int  # reference views rendered per shape
    min_anomaly_pixels: int
    split_ratios: str
    train_preset: str
    rows: tuple[str, ...]
    views_test: int
    jobs: int
    baseline: str  # the query-only row the differences are taken against
    main: str  # the row whose reference use is tested
    bootstrap: int = 2000
    train_sets: dict = field(default_factory=dict)
    row_sets: dict = field(default_factory=dict)  # row -> extra --set values
    user_sets: dict = field(default_factory=dict)  # reproduce's own --set: every row, over the recipe's
    ood: bool = True
    seeds: int = 1  # trainings per row (training seeds base, base+1, ...): the spread a second training shows
    score_epochs: tuple[int, ...] = ()  # checkpoints (epochs) also scored, for the report's checkpoint ensembles
    anomalies: tuple[str, ...] = ("all",)  # generate --anomaly, each
    balance: str = "table1"  # generate --balance
    chair_variety: str = "fixed"  # generate --chair-variety (data_manifests.chair_varieties)
    reference_need: bool = False  # the report also splits missing parts by who can settle them (benchmark.reference_need)

    @classmethod
    def load(cls, name: str) -> Recipe:
        presets = load_json(PRESETS_FILE)
        if name not in presets:
            raise InputError(None, f"unknown reproduce preset {name!r}; known: {', '.join(presets)}")
        data = {k: v for k, v in presets[name].items() if not k.startswith("_")}
        data["rows"] = tuple(data["rows"])
        data["score_epochs"] = tuple(data.get("score_epochs", ()))
        data["anomalies"] = tuple(data.get("anomalies", ("all",)))
        unknown = [r for r in data["rows"] if row_model(r) not in REGISTRY]
        if unknown:
            raise InputError(None, f"preset {name}: unknown model row {unknown[0]!r}")
        return cls(name=name, **data)


class Runner:
    """Runs CLI stages as subprocesses with their logs under OUT/logs; prints one line per stage."""

    def __init__(self, out: Path, echo=print):
        self.out, self.echo = out, echo
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        self.times_file = out / "stage_times.json"
        self.times: dict[str, float] = json.loads(self.times_file.read_text()) if self.times_file.is_file() else {}

    def _line(self, text: str) -> None:
        self.echo(f"[{(time.perf_counter() - self.t0) / 60:6.1f} min] {text}")

    def skip(self, stage: str, why: str) -> None:
        self._line(f"{stage}: {why}, skipped")

    def run(self, stage: str, args: list[str], threads: int | None = None, cores: set[int] | None = None,
            accumulate: bool = False) -> None:
        """``accumulate``: add this call's time to the stage's earlier time (a resumed training)."""
        env = dict(os.environ)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        log = self.logs / f"{stage}.log"
        self._line(f"{stage}: running (log {log})")
        t = time.perf_counter()
        with log.open("a") as f:
            f.write(f"$ brokenchairs {' '.join(args)}\n")
            f.flush()
            preexec = (lambda: os.sched_setaffinity(0, cores)) if cores else None
            proc = subprocess.run([sys.executable, "-m", "brokenchairs", *args], stdout=f, stderr=subprocess.STDOUT,
                                  env=env, preexec_fn=preexec)
        self.times[stage] = time.perf_counter() - t + (self.times.get(stage, 0.0) if accumulate else 0.0)
        self.times_file.write_text(json.dumps(self.times, indent=1))
        if proc.returncode != 0:
            tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise InputError(log, f"stage {stage} failed (exit {proc.returncode}): {tail[0]}")
        self._line(f"{stage}: done in {self.times[stage] / 60:.1f} min")


def _dataset_done(root: Path) -> tuple[bool, bool]:
    """(queries complete, every shape has reference views)."""
    path = root / "dataset.json"
    if not path.is_file():
        return False, False
    data = json.loads(path.read_text())
    queries = bool((data.get("queries") or {}).get("complete"))
    shapes = {s["shape_id"] for s in data.get("shapes", [])}
    have = {sid for name, ids in ((data.get("views") or {}).get("shards") or {}).items()
            if (root / "shards" / name).is_file() for sid in ids}
    return queries, bool(shapes) and shapes <= have


def partnet_dir(given: Path | None) -> Path | None:
    """The real chairs for the out-of-domain rows: --partnet, BROKENCHAIRS_PARTNET, or the team's default."""
    if given is not None:
        if not Path(given).is_dir():
            raise InputError(given, "--partnet is not a folder")
        return Path(given)
    env = os.environ.get("BROKENCHAIRS_PARTNET")
    if env:
        if not Path(env).is_dir():
            raise InputError(env, "BROKENCHAIRS_PARTNET is not a folder")
        return Path(env)
    return DEFAULT_PARTNET if DEFAULT_PARTNET.is_dir() else None


def make_data(run: Runner, recipe: Recipe, root: Path, shapes: Path | None, tag: str, split_ratios: str) -> None:
    queries_done, views_done = _dataset_done(root)
    source = (["--shapes", str(shapes)] if shapes is not None else
              ["--num-shapes", str(recipe.shapes), "--seed", str(recipe.seed), "--chair-variety", recipe.chair_variety])
    if queries_done:
        run.skip(f"generate-{tag}", "complete")
    else:
        kinds = [a for kind in recipe.anomalies for a in ("--anomaly", kind)]
        run.run(f"generate-{tag}", ["generate", *source, *kinds, "--balance", recipe.balance, "--out", str(root), "--resolution",
                                    str(recipe.resolution), "--samples", str(recipe.samples), "--min-anomaly-pixels",
                                    str(recipe.min_anomaly_pixels), "--split-ratios", split_ratios, "--seed", str(recipe.seed)])
    if views_done:
        run.skip(f"views-{tag}", "complete")
    else:
        run.run(f"views-{tag}", ["render-views", "--out", str(root), "--resolution", str(recipe.resolution),
                                 "--views", str(recipe.views)])


def _row_sets(recipe: Recipe, row: str) -> dict:
    return {**recipe.train_sets, **recipe.row_sets.get(row, {}), **recipe.user_sets}


def wanted_epochs(recipe: Recipe, row: str) -> int:
    """The epochs the recipe asks of a row (its training preset, then its --set values)."""
    from brokenchairs.benchmark.config import resolve_config

    return resolve_config(row_model(row), recipe.train_preset, None, _row_sets(recipe, row)).epochs


def replicate_sets(recipe: Recipe, row: str, k: int) -> dict:
    """A row's training options for its k-th training: replicate k > 0 adds k to the training seed."""
    sets = _row_sets(recipe, row)
    if k == 0:
        return sets
    from brokenchairs.benchmark.config import resolve_config

    return {**sets, "seed": resolve_config(row_model(row), recipe.train_preset, None, sets).seed + k}


def trained_epochs(run_dir: Path) -> int:
    """Epochs a finished training of ``run_dir`` was asked for (0 if it never finished)."""
    if not (run_dir / "complete.json").is_file():
        return 0
    return int(json.loads((run_dir / "config.json").read_text())["epochs"])


def _train_args(recipe: Recipe, row: str, data: Path, run_dir: Path, device: str, replicate: int = 0) -> list[str]:
    args = ["train", "--model", row_model(row), "--data", str(data), "--out", str(run_dir), "--preset", recipe.train_preset,
            "--device", device]
    for k, v in replicate_sets(recipe, row, replicate).items():
        args += ["--set", f"{k}={v}"]
    if (run_dir / "last.pt").is_file():  # an interrupted run, or a finished one the recipe now wants longer
        args += ["--resume", "--epochs", str(wanted_epochs(recipe, row))]
    return args


LAST_EVALS = ("eval-test", "eval-shuffled", "eval-partnet")  # the scores of last.pt, stale once a training is extended


def check_score_epochs(recipe: Recipe) -> None:
    """Every scored epoch is one each row's training reaches (one line naming the first that is not)."""
    for e in recipe.score_epochs:
        if e < 1:
            raise InputError(None, f"--score-epochs: epochs count from 1, got {e}")
        for row in recipe.rows:
            if e > wanted_epochs(recipe, row):
                raise InputError(None, f"--score-epochs {e} is past the {wanted_epochs(recipe, row)} epochs row {row} "
                                       "trains (raise them with --set epochs=N)")


def reproduce_table2(out: Path, preset: str = "cpu", partnet: Path | None = None, jobs: int | None = None,
                     echo=print, sets: dict | None = None, device: str = "auto", seeds: int | None = None,
                     data: Path | None = None, score_epochs: tuple[int, ...] | None = None,
                     rows: tuple[str, ...] | None = None) -> Path:
    """``sets``: training options for every row (``--set epochs=10`` extends finished runs; other keys
    apply to trainings not yet started, a resumed run keeping its saved config). ``device``: where
    every training and evaluation runs ("auto": CUDA when torch sees one, else the CPU). ``seeds``:
    trainings per row (default: the recipe's); replicate k trains into ``runs/ROW.seedK`` with the
    training seed + k, and the report adds the spread over trainings. ``data``: a dataset already
    generated (queries complete, views of every shape) to train and score on instead of generating
    ``OUT/data``; its test split is the unseen shapes. ``score_epochs``: checkpoints (epochs) scored
    besides the last, each training's ``epoch-NNN.pt`` with its own and with shuffled references;
    the report adds each row's checkpoint ensemble over them (default: the recipe's, none). ``rows``:
    the rows to train and score (default: the recipe's), e.g. the query-only row and CMT alone when
    device time is short; the differences need the recipe's baseline among them."""
    from brokenchairs.benchmark.device import resolve_device
    from brokenchairs.benchmark.table2 import data_source, write_table2

    recipe = replace(Recipe.load(preset), user_sets=dict(sets or {}))
    if seeds is not None:
        if seeds < 1:
            raise InputError(None, f"--seeds must be at least 1, got {seeds}")
        recipe = replace(recipe, seeds=seeds)
    if score_epochs is not None:
        recipe = replace(recipe, score_epochs=tuple(sorted(set(score_epochs))))
    if rows is not None:
        unknown = [r for r in rows if row_model(r) not in REGISTRY]
        if unknown or not rows:
            raise InputError(None, f"--rows: unknown model row {unknown[0]!r}; known: {', '.join(REGISTRY)}" if unknown
                             else "--rows names no row")
        recipe = replace(recipe, rows=tuple(dict.fromkeys(rows)))
    for row in recipe.rows:  # every --set key checked (one line naming it) before anything runs
        wanted_epochs(recipe, row)
    check_score_epochs(recipe)
    given = None if data is None else Path(data)
    if given is not None and _dataset_done(given) != (True, True):
        raise InputError(given, "--data is not a complete dataset (generate's queries and render-views' views of every "
                               "shape, as dataset.json lists them)")
    jobs = jobs or recipe.jobs
    device = resolve_device(device)
    out = Path(out)
    run = Runner(out, echo)
    echo(f"reproduce table2 --preset {preset}: {data_source(recipe, given)}, "
         f"rows {', '.join(recipe.rows)}" + (f", {recipe.seeds} trainings each" if recipe.seeds > 1 else "")
         + f", {jobs} job(s) at a time on {device} -> {out}")
    if given is None:
        data = out / "data"
        make_data(run, recipe, data, None, "procedural", recipe.split_ratios)
    else:
        data = given
        run.skip("generate-procedural", f"given ({data})")
    real = partnet_dir(partnet) if recipe.ood else None
    ood = out / "data-partnet" if real is not None else None
    if real is not None:
        make_data(run, recipe, ood, real, "partnet", "0,0,1")
    elif recipe.ood:
        echo("  no real PartNet chairs (--partnet, BROKENCHAIRS_PARTNET): the out-of-domain rows are left out")

    runs = out / "runs"
    tasks = []
    # longest first (the rows that encode reference views), so that side-by-side slots end together
    replicates = [(row, k) for k in range(recipe.seeds) for row in recipe.rows]
    for row, k in sorted(replicates, key=lambda rk: (rk[1], not REGISTRY[row_model(rk[0])].views)):
        name = seed_folder(row, k)
        rd = runs / name
        done, want = trained_epochs(rd), wanted_epochs(recipe, row)
        if done >= want:
            run.skip(f"train-{name}", f"complete ({done} epochs)")
            continue
        for stale in LAST_EVALS:  # last.pt's scores of the shorter training (earlier epochs' checkpoints are unchanged)
            shutil.rmtree(rd / stale, ignore_errors=True)
        (rd / "complete.json").unlink(missing_ok=True)

        def train(cores, threads, row=row, k=k, name=name, rd=rd):
            args = _train_args(recipe, row, data, rd, device, k)
            run.run(f"train-{name}", args, threads=threads, cores=cores, accumulate="--resume" in args)
            (rd / "complete.json").write_text(json.dumps({"seconds": run.times.get(f"train-{name}")}))

        tasks.append(Task(f"train-{name}", train))

    from brokenchairs.benchmark.wrong_reference import family_kin
    from brokenchairs.dataset.index import DatasetIndex

    test_ids = DatasetIndex.open(data, "test", need_views=False).shapes()
    test_shapes = len(test_ids)
    if test_shapes < 2:
        echo(f"  the test split holds {test_shapes} shape: no shuffled-reference control")
    near_miss = bool(family_kin(data, test_ids))
    if not near_miss:
        echo("  no two test chairs of one procedural family: no near-miss control")
    # each evaluation starts once its checkpoint exists (an epoch's as its training passes it, last.pt's
    # once the training is complete), on a slot a finished training freed: beside the longer trainings
    for row, k in replicates:
        name = seed_folder(row, k)
        rd = runs / name
        shuffle = REGISTRY[row_model(row)].views and test_shapes >= 2
        shuffled = ["--shuffle-references"]
        # (eval folder, checkpoint, data, extra eval options): last.pt, then the --score-epochs checkpoints
        scored = [("eval-test", "last.pt", data, [])] + ([("eval-shuffled", "last.pt", data, shuffled)] if shuffle else [])
        if shuffle and near_miss:
            scored.append(("eval-near-miss", "last.pt", data, ["--references", "near-miss"]))
        if ood is not None and k == 0:  # out of domain: the first training of each row
            scored.append(("eval-partnet", "last.pt", ood, []))
        for e in recipe.score_epochs:
            if e == wanted_epochs(recipe, row):  # its checkpoint is last.pt, scored above
                continue
            own_folder, shuffled_folder = checkpoint_evals(e)
            scored.append((own_folder, f"epoch-{e:03d}.pt", data, []))
            if shuffle:
                scored.append((shuffled_folder, f"epoch-{e:03d}.pt", data, shuffled))
        for folder, checkpoint, root, extra in scored:
            target, stage = rd / folder, folder.replace("eval-", f"eval-{name}-", 1)
            if (target / "metrics.json").is_file():
                run.skip(stage, "done")
                continue
            args = ["eval", "--checkpoint", str(rd / checkpoint), "--data", str(root), "--split", "test", "--views",
                    str(recipe.views_test), "--out", str(target), "--device", device, *extra]
            made = rd / ("complete.json" if checkpoint == "last.pt" else checkpoint)
            tasks.append(Task(stage, lambda cores, threads, stage=stage, args=args:
                              run.run(stage, args, threads=threads, cores=cores), made.is_file))
    run_tasks(jobs, tasks)
    flags = "".join(f" --{name} {value}" for name, value in (
        ("rows", rows and ",".join(recipe.rows)), ("seeds", seeds),
        ("score-epochs", score_epochs is not None and ",".join(map(str, recipe.score_epochs)))) if value)
    path = write_table2(out, recipe, run.times, wall=time.perf_counter() - run.t0, device=device, data=given, flags=flags)
    echo(f"-> {path}")
    return path
