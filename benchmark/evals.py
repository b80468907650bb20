"""Reading ``brokenchairs eval`` folders and the statistics taken over them: a row's AUC with its
95% interval from a bootstrap over test shapes, the paired difference of two scorings of the same
queries, and how normal queries' scores move with a wrong reference. Shared by ``compare``, the
checkpoint ensembles (``benchmark.ensemble``) and the ``reproduce table2`` report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from brokenchairs.benchmark.bootstrap import Interval, paired_difference, shape_bootstrap, shape_mean
from brokenchairs.errors import InputError


def references_used(metrics: dict) -> str:
    """Which references an evaluation paired its queries with: "own", or a wrong-reference control
    (``benchmark.wrong_reference.CONTROLS``; evaluations before near-miss controls record a flag)."""
    return metrics.get("references") or ("shuffled" if metrics.get("shuffled_references") else "own")


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


def normal_score_changes(own: dict[str, dict], shuffled: dict[str, dict]) -> tuple[np.ndarray, np.ndarray]:
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
    d, shapes = normal_score_changes(own["preds"], shuffled["preds"])
    if not len(d):
        return None
    rises = np.where(d > 0, 1.0, np.where(d == 0, 0.5, 0.0))
    return {"rises": shape_mean(rises, shapes, replicates), "change": shape_mean(d, shapes, replicates), "n": len(d)}
