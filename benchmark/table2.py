"""The evidence report of ``reproduce table2``: ``table2.md``, ``table2.json``, ``roc.png``, ``examples.png``.

Read from the run folders ``OUT/runs/<row>/eval-{test,shuffled,partnet}/`` (``predictions.csv`` and
``metrics.json`` as ``brokenchairs eval`` writes them). Every AUC carries a 95% interval from a
bootstrap over test shapes (``benchmark.bootstrap``); differences between two scorings of the same
images (a row minus the query-only row, CMT minus CMT with shuffled references) carry the paired
interval. ``reference_sensitivity`` compares each normal query's score with its own and with another
shape's reference: whether the model responds to a wrong reference, beside whether the right one helps.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from brokenchairs.benchmark.bootstrap import Interval, paired_difference, shape_bootstrap, shape_mean
from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES as TYPES
from brokenchairs.errors import InputError
from brokenchairs.models.registry import REGISTRY


def row_model(row: str) -> str:
    """A row is a model name, optionally ``name@variant`` for a second configuration of it."""
    return row.split("@")[0]


def seed_folder(row: str, replicate: int) -> str:
    """The run folder of a row's ``replicate``-th training (0: the row's own name)."""
    return row if replicate == 0 else f"{row}.seed{replicate}"


def read_predictions(folder: Path) -> dict[str, dict]:
    path = Path(folder) / "predictions.csv"
    if not path.is_file():
        raise InputError(path, "missing: run brokenchairs eval into this folder first")
    with path.open() as f:
        return {r["sample_id"]: r for r in csv.DictReader(f)}


def score_arrays(preds: dict[str, dict], ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([int(preds[i]["label"]) for i in ids]), np.array([float(preds[i]["score"]) for i in ids]),
            np.array([preds[i]["shape_id"] for i in ids]))


def fmt_interval(iv: Interval | None, signed: bool = False) -> str:
    if iv is None:
        return "-"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(100 * iv.value)} [{f.format(100 * iv.low)}, {f.format(100 * iv.high)}]"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def row_label(row: str) -> str:
    name, _, variant = row.partition("@")
    base = REGISTRY[name].label if name in REGISTRY else name
    return f"{base} ({variant})" if variant else base


def read_eval(folder: Path) -> dict:
    """An eval folder as ``brokenchairs eval`` writes it: its metrics, predictions by sample id, sorted ids."""
    preds = read_predictions(folder)
    meta = Path(folder) / "metrics.json"
    if not meta.is_file():
        raise InputError(meta, "missing: run brokenchairs eval into this folder first")
    return {"metrics": json.loads(meta.read_text()), "preds": preds, "ids": sorted(preds)}


def row_summary(folder: Path, replicates: int, seed: int = 0) -> dict:
    ev = read_eval(folder)
    metrics, preds, ids = ev["metrics"], ev["preds"], ev["ids"]
    y, s, shapes = score_arrays(preds, ids)
    auc = shape_bootstrap(y, s, shapes, replicates, seed) if len(np.unique(y)) == 2 else None
    return {"metrics": metrics, "auc": auc, "ids": ids, "preds": preds, "shapes": len(set(shapes)), "n": len(ids)}


def paired_auc(a: dict, b: dict, replicates: int) -> Interval | None:
    ids = sorted(set(a["ids"]) & set(b["ids"]))
    if not ids:
        return None
    y, sa, shapes = score_arrays(a["preds"], ids)
    _, sb, _ = score_arrays(b["preds"], ids)
    return paired_difference(y, sa, sb, shapes, replicates) if len(np.unique(y)) == 2 else None


def _normal_score_changes(own: dict[str, dict], shuffled: dict[str, dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per normal query scored both ways (predictions by sample id): shuffled minus own score, and its shape."""
    ids = [i for i in sorted(set(own) & set(shuffled)) if own[i]["label"] == "0"]
    _, s_own, shapes = score_arrays(own, ids)
    _, s_shuf, _ = score_arrays(shuffled, ids)
    return s_shuf - s_own, shapes


def reference_sensitivity(own: dict, shuffled: dict, replicates: int) -> dict | None:
    """Over the normal queries scored both ways (``row_summary`` of the same model's own-reference
    and shuffled-reference evaluations): ``rises``, the share whose anomaly score is higher with
    another shape's reference (ties count half; 0.5 for a model that ignores the reference), and
    ``change``, the mean score difference (shuffled minus own). A model that compares the photo with
    the reference should call a normal chair anomalous when shown a different chair."""
    d, shapes = _normal_score_changes(own["preds"], shuffled["preds"])
    if not len(d):
        return None
    rises = np.where(d > 0, 1.0, np.where(d == 0, 0.5, 0.0))
    return {"rises": shape_mean(rises, shapes, replicates), "change": shape_mean(d, shapes, replicates), "n": len(d)}


def _score_change(run: Path) -> float | None:
    """A run's mean wrong-reference score change of normal test queries (None before both evaluations)."""
    own, shuffled = run / "eval-test", run / "eval-shuffled"
    if not ((own / "predictions.csv").is_file() and (shuffled / "predictions.csv").is_file()):
        return None
    d, _ = _normal_score_changes(read_predictions(own), read_predictions(shuffled))
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
                 data: Path | None = None) -> Path:
    """``times``: seconds per stage (summed over resumed calls); ``wall``: this call's seconds;
    ``device``: where the trainings and evaluations ran (named in the report); ``data``: the dataset
    given to ``reproduce table2 --data`` (None: the recipe's own procedural chairs)."""
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
    given = f" --data {data}" if data is not None else ""
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
    result = {"recipe": recipe.name, "sets": recipe.user_sets, "device": device, "seeds": recipe.seeds, "rows": {},
              "stage_seconds": times}
    for row, r in test.items():
        result["rows"][row] = {"auc": r["auc"].as_json() if r["auc"] else None, "accuracy": r["metrics"].get("accuracy"),
                               "per_type": r["metrics"].get("per_type"), "n": r["n"], "shapes": r["shapes"],
                               "viewpoint_accuracy": r["metrics"].get("viewpoint_accuracy")}
        if base is not None and row != recipe.baseline:
            d = paired_auc(r, base, rep)
            result["rows"][row]["minus_baseline"] = d.as_json() if d else None
    if shuffled:
        lines += ["", "**Does it look at the reference?** The same test queries, each paired with another test shape's "
                  "reference views. The last two columns take the normal queries one by one: the share (%) scored "
                  "more anomalous with the wrong reference (50 for a model that ignores it) and the mean change of "
                  "their score (in points of probability):", "",
                  "| Method | AUC, own reference | AUC, shuffled references | drop (paired) "
                  "| normal queries scored higher | mean score change |", "|---|---|---|---|---|---|"]
        for row, r in shuffled.items():
            drop = paired_auc(test[row], r, rep)
            sens = reference_sensitivity(test[row], r, rep)
            cells = [row_label(row), fmt_interval(test[row]["auc"]), fmt_interval(r["auc"]), fmt_interval(drop, signed=True),
                     fmt_interval(sens and sens["rises"]), fmt_interval(sens and sens["change"], signed=True)]
            lines.append("| " + " | ".join(cells) + " |")
            result["rows"][row]["shuffled_auc"] = r["auc"].as_json() if r["auc"] else None
            result["rows"][row]["shuffled_drop"] = drop.as_json() if drop else None
            result["rows"][row]["reference_sensitivity"] = (
                {"rises": sens["rises"].as_json(), "change": sens["change"].as_json(), "n": sens["n"]} if sens else None)
    if partnet:
        p0 = next(iter(partnet.values()))
        lines += ["", f"**Out of domain**: the same models on {p0['shapes']} real PartNet chairs ({p0['n']} queries, "
                  "same recipe):", "", "| Method | AUC | Acc. |", "|---|---|---|"]
        for row, r in partnet.items():
            lines.append(f"| {row_label(row)} | {fmt_interval(r['auc'])} | {_pct(r['metrics'].get('accuracy'))} |")
            result["rows"][row]["partnet_auc"] = r["auc"].as_json() if r["auc"] else None
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
    if times:
        total = sum(times.values())
        lines += ["", f"Stage times (min, trainings and evaluations {recipe.jobs} side by side, so they overlap): "
                  + ", ".join(f"{k} {v / 60:.1f}" for k, v in times.items()) + f"; sum {total / 60:.1f} min."
                  + (f" This call's wall time: {wall / 60:.1f} min." if wall is not None else "")]
    result["wall_seconds"] = wall
    lines += ["", "![ROC curves](roc.png)", "", f"![examples: {row_label(recipe.main)}](examples.png)", ""]
    plot_rocs(out / "roc.png", test)
    example = runs / recipe.main / "eval-test" / "examples.png"
    if example.is_file():
        shutil.copyfile(example, out / "examples.png")
    (out / "table2.json").write_text(json.dumps(result, indent=1))
    path = out / "table2.md"
    path.write_text("\n".join(lines))
    return path
