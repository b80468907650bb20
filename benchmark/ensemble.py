"""Checkpoint ensembles: several evaluations of the same test queries by one model (epochs, seeds).

Each query's score is the mean over the evaluations of its score's rank within its evaluation,
scaled to (0, 1]: checkpoints of a small-data training swing by several AUC points from one epoch
to the next, and averaging several of them measures the model rather than one draw of that noise.
Ranks, not raw scores, because checkpoints differ in calibration; the wrong-reference score change
is read on the mean raw scores (``raw_preds``), since a shift of every score leaves ranks alone.
Used by ``compare`` (comma-separated folders) and by ``reproduce table2 --score-epochs``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from brokenchairs.benchmark.bootstrap import shape_bootstrap
from brokenchairs.benchmark.evals import read_eval, references_used, row_summary, score_arrays
from brokenchairs.errors import InputError


def ensemble_summary(folders: list[Path], replicates: int) -> dict:
    """``row_summary`` of several evaluations of the same queries by one model, scores rank-averaged.

    Refuses folders of another model, of other queries, or that mix own and wrong references."""
    rows = [read_eval(f) for f in folders]
    first, ids = rows[0], rows[0]["ids"]
    for f, r in zip(folders[1:], rows[1:]):
        if r["metrics"]["model"] != first["metrics"]["model"]:
            raise InputError(f, f"model {r['metrics']['model']}, not {first['metrics']['model']} as in {folders[0]}: "
                                "an ensemble is of one model's checkpoints")
        if references_used(r["metrics"]) != references_used(first["metrics"]):
            raise InputError(f, f"mixes {references_used(r['metrics'])} references with {folders[0]}'s "
                                f"{references_used(first['metrics'])}")
        if r["ids"] != ids:
            raise InputError(f, f"scores other queries than {folders[0]}: an ensemble needs the same queries in each")
    scores = [score_arrays(r["preds"], ids)[1] for r in rows]
    ranks = np.mean([rankdata(s) / len(ids) for s in scores], axis=0)
    preds = {i: dict(first["preds"][i], score=repr(float(s))) for i, s in zip(ids, ranks)}
    # the wrong-reference score change is read on raw scores: a shift of every score leaves ranks alone
    raw = {i: dict(first["preds"][i], score=repr(float(s))) for i, s in zip(ids, np.mean(scores, axis=0))}
    y, s, shapes = score_arrays(preds, ids)
    metrics = dict(first["metrics"], checkpoint=",".join(sorted(str(r["metrics"].get("checkpoint")) for r in rows)))
    auc = shape_bootstrap(y, s, shapes, replicates) if len(np.unique(y)) == 2 else None
    return {"metrics": metrics, "auc": auc, "ids": ids, "preds": preds, "shapes": len(set(shapes)), "n": len(ids),
            "members": len(rows), "raw_preds": raw}


def summary(folders: list[Path], replicates: int) -> dict:
    """One folder's ``row_summary`` or several folders' ensemble; ``raw_preds`` either way (one
    folder's raw scores are its predictions)."""
    if len(folders) > 1:
        return ensemble_summary(folders, replicates)
    one = row_summary(folders[0], replicates)
    return dict(one, raw_preds=one["preds"])
