"""The evidence report of ``reproduce table2``: ``table2.md``, ``table2.json``, ``roc.png``, ``examples.png``.

Read from the run folders ``OUT/runs/<row>/eval-{test,shuffled,near-miss,partnet}/`` (``predictions.csv`` and
``metrics.json`` as ``brokenchairs eval`` writes them; with ``--score-epochs`` also each scored
checkpoint's ``eval-{test,shuffled}-eNNN/``, read as checkpoint ensembles, ``benchmark.ensemble``).
Every AUC carries a 95% interval from a bootstrap over test shapes; differences between two
scorings of the same images (a row minus the query-only row, CMT minus CMT with shuffled
references) carry the paired interval; the normal queries' score change with a wrong reference
says whether a model responds to the reference, beside whether the right one helps (the
statistics: ``benchmark.evals``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from brokenchairs.benchmark.ensemble import summary
from brokenchairs.benchmark.evals import (fmt_interval, normal_score_changes, paired_auc, read_predictions,
                                          reference_sensitivity, row_summary, score_arrays)
from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES as TYPES
from brokenchairs.data_manifests.reference_controls import CONTROLS
from brokenchairs.models.registry import REGISTRY


def row_model(row: str) -> str:
    """A row is a model name, optionally ``name@variant`` for a second configuration of it."""
    return row.split("@")[0]


def seed_folder(row: str, replicate: int) -> str:
    """The run folder of a row's ``replicate``-th training (0: the row's own name)."""
    return row if replicate == 0 else f"{row}.seed{replicate}"


def checkpoint_evals(epoch: int, final: bool = False) -> tuple[str, str]:
    """The eval folders of a training's epoch-``epoch`` checkpoint: own and shuffled references. The
    final epoch's checkpoint is last.pt, scored as every row is (``final``: its folders)."""
    return ("eval-test", "eval-shuffled") if final else (f"eval-test-e{epoch:03d}", f"eval-shuffled-e{epoch:03d}")


def _final_epoch(run: Path) -> int | None:
    path = run / "config.json"
    return int(json.loads(path.read_text())["epochs"]) if path.is_file() else None


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def row_label(row: str) -> str:
    name, _, variant = row.partition("@")
    base = REGISTRY[name].label if name in REGISTRY else name
    return f"{base} ({variant})" if variant else base


def _score_change(run: Path) -> float | None:
    """A run's mean wrong-reference score change of normal test queries (None before both evaluations)."""
    own, shuffled = run / "eval-test", run / "eval-shuffled"
    if not ((own / "predictions.csv").is_file() and (shuffled / "predictions.csv").is_file()):
        return None
    d, _ = normal_score_changes(read_predictions(own), read_predictions(shuffled))
    return float(d.mean()) if len(d) else None


def _auc(folder: Path) -> float | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text()).get("auc") if path.is_file() else None


def seed_spread(runs: Path, recipe) -> dict[str, dict]:
    """Per row, over its ``recipe.seeds`` trainings: the test AUC of each, the row minus the baseline's
    training of the same index, the shuffled-reference drop and the normal queries' mean score change
    with a wrong reference; mean and sample sd of each list."""
    out = {}
    for row in recipe.rows:
        folders = [runs / seed_folder(row, k) for k in range(recipe.seeds)]
        lists = {"auc": [_auc(f / "eval-test") for f in folders]}
        if row != recipe.baseline:
            base = [_auc(runs / seed_folder(recipe.baseline, k) / "eval-test") for k in range(recipe.seeds)]
            lists["minus_baseline"] = [None if a is None or b is None else a - b for a, b in zip(lists["auc"], base)]
        if REGISTRY[row_model(row)].views:
            shuffled = [_auc(f / "eval-shuffled") for f in folders]
            lists["shuffled_drop"] = [None if a is None or b is None else a - b for a, b in zip(lists["auc"], shuffled)]
            lists["wrong_reference_change"] = [_score_change(f) for f in folders]
        out[row] = {}
        for key, values in lists.items():
            have = np.array([v for v in values if v is not None], dtype=float)
            out[row][key] = {"values": values, "mean": float(have.mean()) if len(have) else None,
                             "sd": float(have.std(ddof=1)) if len(have) > 1 else None}
    return out


def _spread_cell(entry: dict | None, signed: bool = False) -> str:
    if entry is None:
        return "-"
    f = "{:+.1f}" if signed else "{:.1f}"
    values = ", ".join("-" if v is None else f.format(100 * v) for v in entry["values"])
    mean = "-" if entry["mean"] is None else f.format(100 * entry["mean"])
    sd = "" if entry["sd"] is None else f" ± {100 * entry['sd']:.1f}"
    return f"{values} (mean {mean}{sd})"


def ensemble_rows(runs: Path, recipe, replicates: int) -> dict[str, dict]:
    """Per row, the checkpoint ensemble of its ``recipe.score_epochs`` checkpoints over its
    ``recipe.seeds`` trainings (the evaluations that exist): AUC, minus the baseline's ensemble
    (paired), and for view models the same checkpoints with shuffled references: AUC, drop (paired)
    and the normal queries' mean score change with a wrong reference (on mean raw scores)."""
    out = {}
    for row in recipe.rows:
        pairs = []
        for rd in (runs / seed_folder(row, k) for k in range(recipe.seeds)):
            final = _final_epoch(rd)
            pairs += [(rd / o, rd / s) for o, s in (checkpoint_evals(e, e == final) for e in recipe.score_epochs)
                      if (rd / o / "metrics.json").is_file()]
        if not pairs:
            continue
        out[row] = {"own": summary([o for o, _ in pairs], replicates), "folders": [o for o, _ in pairs]}
        if all((s / "metrics.json").is_file() for _, s in pairs):  # the same checkpoints scored both ways, or none
            out[row]["shuffled"] = summary([s for _, s in pairs], replicates)
    base = out.get(recipe.baseline)
    for row, r in out.items():
        if base is not None and row != recipe.baseline:
            r["minus_baseline"] = paired_auc(r["own"], base["own"], replicates)
        if "shuffled" in r:
            r["drop"] = paired_auc(r["own"], r["shuffled"], replicates)
            r["sensitivity"] = reference_sensitivity({"preds": r["own"]["raw_preds"]}, {"preds": r["shuffled"]["raw_preds"]},
                                                     replicates)
    return out


def _json(iv) -> dict | None:
    return iv.as_json() if iv is not None else None


def _ensemble_lines(ens: dict[str, dict], recipe, result: dict) -> list[str]:
    epochs = ", ".join(map(str, recipe.score_epochs))
    trainings = f" of each of its {recipe.seeds} trainings" if recipe.seeds > 1 else ""
    lines = ["", f"**Checkpoint ensembles** (`--score-epochs {','.join(map(str, recipe.score_epochs))}`): each row's "
             f"checkpoints of epochs {epochs}{trainings}, each test query scored by its mean rank over them "
             "(`benchmark.ensemble`). Single checkpoints of a small training swing by several AUC points from one "
             "epoch to the next; the ensemble measures the model rather than one draw of that noise. Intervals: "
             "bootstrap over test shapes, paired where two ensembles score the same queries.", "",
             f"| Method | evaluations | AUC | AUC - {row_label(recipe.baseline)} (paired) | AUC, shuffled references "
             "| drop (paired) | normal queries' mean score change, wrong reference |", "|---|---|---|---|---|---|---|"]
    for row, r in ens.items():
        sens = r.get("sensitivity")
        lines.append("| " + " | ".join([row_label(row), str(len(r["folders"])), fmt_interval(r["own"]["auc"]),
                                         fmt_interval(r.get("minus_baseline"), signed=True),
                                         fmt_interval(r["shuffled"]["auc"]) if "shuffled" in r else "-",
                                         fmt_interval(r.get("drop"), signed=True),
                                         fmt_interval(sens and sens["change"], signed=True)]) + " |")
        result["rows"].setdefault(row, {})["ensemble"] = {
            "evaluations": [str(f) for f in r["folders"]], "auc": _json(r["own"]["auc"]),
            "minus_baseline": _json(r.get("minus_baseline")),
            "shuffled_auc": _json(r["shuffled"]["auc"]) if "shuffled" in r else None,
            "shuffled_drop": _json(r.get("drop")), "wrong_reference_change": _json(sens and sens["change"])}
    return lines


SHUFFLED_HEADING = ("**Does it look at the reference?** The same test queries, each paired with another test shape's "
                    "reference views. The last two columns take the normal queries one by one: the share (%) scored "
                    "more anomalous with the wrong reference (50 for a model that ignores it) and the mean change of "
                    "their score (in points of probability):")
NEAR_MISS_HEADING = ("**Does it compare part by part?** The same test queries, each paired with the reference views of "
                     "another test chair of its own procedural family (`eval --references near-miss`): the wrong "
                     "reference that a comparison of family against family cannot tell from the right one. Columns "
                     "as above:")


def _control_lines(test: dict[str, dict], wrong: dict[str, dict], rep: int, result: dict, control: str) -> list[str]:
    """A wrong-reference control's table (``CONTROLS``): each row's AUC with its own and with the wrong
    references, the paired drop and how normal queries' scores move; recorded in ``result`` as
    ``<control>_auc``, ``<control>_drop`` and ``<control>_sensitivity`` (the shuffled one's also as
    ``reference_sensitivity``, its name before near-miss controls)."""
    key = control.replace("-", "_")
    lines = ["", SHUFFLED_HEADING if control == "shuffled" else NEAR_MISS_HEADING, "",
             f"| Method | AUC, own reference | AUC, {CONTROLS[control]} | drop (paired) "
             "| normal queries scored higher | mean score change |", "|---|---|---|---|---|---|"]
    for row, r in wrong.items():
        drop = paired_auc(test[row], r, rep)
        sens = reference_sensitivity(test[row], r, rep)
        lines.append("| " + " | ".join([row_label(row), fmt_interval(test[row]["auc"]), fmt_interval(r["auc"]),
                                        fmt_interval(drop, signed=True), fmt_interval(sens and sens["rises"]),
                                        fmt_interval(sens and sens["change"], signed=True)]) + " |")
        entry = result["rows"][row]
        entry[f"{key}_auc"], entry[f"{key}_drop"] = _json(r["auc"]), _json(drop)
        entry[f"{key}_sensitivity"] = (
            {"rises": sens["rises"].as_json(), "change": sens["change"].as_json(), "n": sens["n"]} if sens else None)
        if control == "shuffled":
            entry["reference_sensitivity"] = entry[f"{key}_sensitivity"]
    return lines


def _need_lines(test: dict[str, dict], shuffled: dict[str, dict], ens: dict[str, dict], recipe, result: dict) -> list[str]:
    """The report's split of the missing parts into those only the reference can settle and those the
    photo can (``benchmark.reference_need``), for each row's last checkpoint and checkpoint ensemble."""
    from brokenchairs.benchmark.reference_need import SUBSETS, need_breakdown, need_counts, reference_need

    first = next(iter(test.values()))["metrics"]
    need = reference_need(Path(first["data"]), first.get("split", "test"))
    if not need:
        return []
    rep, counts = recipe.bootstrap, need_counts(need)
    base = row_label(recipe.baseline)
    lines = ["", f"**Where only the reference can tell** (`compare --by-reference-need`): of the {len(need)} missing-part "
             f"test anomalies, {counts['needed']} leave a chair whose parts (labels and counts) some training chair has, so "
             "a normal chair of that make exists and only the reference can tell the anomaly (`needed`); the "
             f"other {counts['settled']} leave a chair no training chair resembles part for part, which the photo "
             "alone can give away (`settled`). Each AUC pits one subset's anomalies against every normal query. A "
             "model that reads its reference loses on `needed` with shuffled references, whatever it does on "
             "`settled`; the drop over all anomalies is diluted by the `settled` share.", "",
             f"| Anomalies | Method | scored | anomalies | AUC | AUC - {base} (paired) | AUC, shuffled references "
             "| drop (paired) |", "|---|---|---|---|---|---|---|---|"]
    scorings = [(row, "last checkpoint", test[row], test.get(recipe.baseline), shuffled.get(row)) for row in test]
    scorings += [(row, f"ensemble of {len(r['folders'])}", r["own"], ens.get(recipe.baseline, {}).get("own"),
                  r.get("shuffled")) for row, r in ens.items()]
    table = {name: [] for name in SUBSETS}
    out: dict = {"counts": counts, "rows": {}}
    for row, scored, own, baseline, shuf in scorings:
        others = {k: v for k, v in (("minus_baseline", baseline if row != recipe.baseline else None),
                                    ("shuffled_drop", shuf)) if v is not None}
        mine = need_breakdown(own, need, rep, others)
        shuffled_auc = need_breakdown(shuf, need, rep) if shuf is not None else {}
        for name in SUBSETS:
            e = mine[name]
            entry = {"anomalies": e["anomalies"], "auc": e["auc"], "minus_baseline": e.get("minus_baseline"),
                     "shuffled_auc": shuffled_auc.get(name, {}).get("auc"), "shuffled_drop": e.get("shuffled_drop")}
            table[name].append("| " + " | ".join([name, row_label(row), scored, str(e["anomalies"]), fmt_interval(e["auc"]),
                                                   fmt_interval(entry["minus_baseline"], signed=True),
                                                   fmt_interval(entry["shuffled_auc"]),
                                                   fmt_interval(entry["shuffled_drop"], signed=True)]) + " |")
            out["rows"].setdefault(row, {}).setdefault(scored, {})[name] = {
                k: v if k == "anomalies" else _json(v) for k, v in entry.items()}
    result["reference_need"] = out
    return lines + [line for name in SUBSETS for line in table[name]]


def plot_rocs(path: Path, rows: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for row, r in rows.items():
        y, s, _ = score_arrays(r["preds"], r["ids"])
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, lw=1.8, label=f"{row_label(row)} (AUC {100 * r['auc'].value:.1f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="unseen test shapes", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def data_source(recipe, data: Path | None) -> str:
    """The data of a run in words: the dataset given to ``--data``, else the recipe's procedural chairs."""
    if data is not None:
        return f"the dataset {data}"
    return f"{recipe.shapes} procedural chairs at {recipe.resolution}x{recipe.resolution}"


def write_table2(out: Path, recipe, times: dict[str, float], wall: float | None = None, device: str | None = None,
                 data: Path | None = None, flags: str = "") -> Path:
    """``times``: seconds per stage (summed over resumed calls); ``wall``: this call's seconds;
    ``device``: where the trainings and evaluations ran (named in the report); ``data``: the dataset
    given to ``reproduce table2 --data`` (None: the recipe's own procedural chairs); ``flags``: the
    call's other options that shape the report (``--rows``, ``--seeds``, ``--score-epochs``), as typed."""
    out = Path(out)
    runs = out / "runs"
    rep = recipe.bootstrap
    test = {row: row_summary(runs / row / "eval-test", rep) for row in recipe.rows}
    shuffled = {row: row_summary(runs / row / "eval-shuffled", rep) for row in recipe.rows
                if (runs / row / "eval-shuffled" / "metrics.json").is_file()}
    partnet = {row: row_summary(runs / row / "eval-partnet", rep) for row in recipe.rows
               if (runs / row / "eval-partnet" / "metrics.json").is_file()}
    base = test.get(recipe.baseline)
    any_test = next(iter(test.values()))
    boxes = any(r["metrics"].get("box_ap50") is not None for r in test.values())  # columns only with a box head
    box_cols = ["Box AP50", "BoxAcc"] if boxes else []
    sets = "".join(f" --set {k}={v}" for k, v in recipe.user_sets.items())
    given = (f" --data {data}" if data is not None else "") + flags
    source = data_source(recipe, data)
    lines = [f"# Table 2, scaled down (`brokenchairs reproduce table2 --preset {recipe.name}{given}{sets}`)", "",
             f"{source}; test split: "
             f"{any_test['n']} queries of {any_test['shapes']} shapes never seen in training; "
             f"{recipe.views_test} reference views per query at test time. AUC and accuracy in %, "
             f"[95% interval] from {rep} bootstrap replicates over test shapes."
             + (f" Trained and scored on {device}." if device else ""), "",
             "| " + " | ".join(["3D Ref.", "Method", "AUC", "Acc.", *(f"AUC {t}" for t in TYPES),
                                 f"AUC - {row_label(recipe.baseline)} (paired)", "Viewpoint acc.", *box_cols]) + " |",
             "|" + "---|" * (6 + len(TYPES) + len(box_cols))]
    for row, r in test.items():
        m = r["metrics"]
        per = [_pct((m.get("per_type", {}).get(t) or {}).get("auc")) for t in TYPES]
        diff = fmt_interval(paired_auc(r, base, rep), signed=True) if (base is not None and row != recipe.baseline) else "-"
        box = [_pct(m.get("box_ap50")), _pct(m.get("box_acc"))] if boxes else []
        lines.append("| " + " | ".join(["✓" if REGISTRY[row_model(row)].views else "✗", row_label(row), fmt_interval(r["auc"]),
                                          _pct(m.get("accuracy")), *per, diff, _pct(m.get("viewpoint_accuracy")),
                                          *box]) + " |")
    result = {"recipe": recipe.name, "sets": recipe.user_sets, "device": device, "seeds": recipe.seeds,
              "score_epochs": list(recipe.score_epochs), "rows": {},
              "stage_seconds": times}
    for row, r in test.items():
        result["rows"][row] = {"auc": _json(r["auc"]), "accuracy": r["metrics"].get("accuracy"),
                               "per_type": r["metrics"].get("per_type"), "n": r["n"], "shapes": r["shapes"],
                               "viewpoint_accuracy": r["metrics"].get("viewpoint_accuracy")}
        if base is not None and row != recipe.baseline:
            d = paired_auc(r, base, rep)
            result["rows"][row]["minus_baseline"] = _json(d)
    if shuffled:
        lines += _control_lines(test, shuffled, rep, result, "shuffled")
    near = {row: row_summary(runs / row / "eval-near-miss", rep) for row in recipe.rows
            if (runs / row / "eval-near-miss" / "metrics.json").is_file()}
    if near:
        lines += _control_lines(test, near, rep, result, "near-miss")
    if partnet:
        p0 = next(iter(partnet.values()))
        lines += ["", f"**Out of domain**: the same models on {p0['shapes']} real PartNet chairs ({p0['n']} queries, "
                  "same recipe):", "", "| Method | AUC | Acc. |", "|---|---|---|"]
        for row, r in partnet.items():
            lines.append(f"| {row_label(row)} | {fmt_interval(r['auc'])} | {_pct(r['metrics'].get('accuracy'))} |")
            result["rows"][row]["partnet_auc"] = _json(r["auc"])
    if recipe.seeds > 1:
        spread = seed_spread(runs, recipe)
        lines += ["", f"**A second training**: every row trained {recipe.seeds} times on the same data (training seed "
                  f"+0..+{recipe.seeds - 1}, folders `runs/ROW.seedK`), test AUC of each (mean ± sd over trainings). The "
                  "intervals above cover the test shapes of the first training only; this spread is what another "
                  "training moves a row by.", "",
                  f"| Method | AUC per training | AUC - {row_label(recipe.baseline)}, same training index "
                  "| shuffled-reference drop | normal queries' score change, wrong reference |", "|---|---|---|---|---|"]
        for row, entry in spread.items():
            lines.append(f"| {row_label(row)} | {_spread_cell(entry['auc'])} | {_spread_cell(entry.get('minus_baseline'), True)} "
                         f"| {_spread_cell(entry.get('shuffled_drop'), True)} "
                         f"| {_spread_cell(entry.get('wrong_reference_change'), True)} |")
            result["rows"][row]["seeds"] = entry
    ens = ensemble_rows(runs, recipe, rep) if recipe.score_epochs else {}
    if ens:
        lines += _ensemble_lines(ens, recipe, result)
    if recipe.reference_need:
        lines += _need_lines(test, shuffled, ens, recipe, result)
    if times:
        total = sum(times.values())
        lines += ["", f"Stage times (min, trainings and evaluations {recipe.jobs} side by side, so they overlap): "
                  + ", ".join(f"{k} {v / 60:.1f}" for k, v in times.items()) + f"; sum {total / 60:.1f} min."
                  + (f" This call's wall time: {wall / 60:.1f} min." if wall is not None else "")]
    result["wall_seconds"] = wall
    example = runs / recipe.main / "eval-test" / "examples.png"  # absent when --rows leaves the main row out
    lines += ["", "![ROC curves](roc.png)", ""] + ([f"![examples: {row_label(recipe.main)}](examples.png)", ""]
                                                  if example.is_file() else [])
    plot_rocs(out / "roc.png", test)
    if example.is_file():
        shutil.copyfile(example, out / "examples.png")
    (out / "table2.json").write_text(json.dumps(result, indent=1))
    path = out / "table2.md"
    path.write_text("\n".join(lines))
    return path
