"""``brokenchairs compare A B``: two evaluations of the same test queries side by side, with intervals
from a bootstrap over test shapes, their paired AUC difference and, when B is A's checkpoint scored
with shuffled references, how each normal query's score moves with the wrong reference.

A side may name several eval folders (comma-separated): a checkpoint ensemble. Each query's score is
then the mean over the folders of its score's rank within its folder, scaled to (0, 1]: checkpoints
of a small-data training swing by several AUC points from one epoch to the next, and averaging
several of them (epochs, seeds) measures the model rather than one draw of that noise. Ranks, not
raw scores, because checkpoints differ in calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from brokenchairs.benchmark.bootstrap import shape_bootstrap
from brokenchairs.benchmark.table2 import (fmt_interval, paired_auc, read_eval, reference_sensitivity, row_label,
                                           row_summary, score_arrays)
from brokenchairs.errors import InputError


def _name(r: dict) -> str:
    m = r["metrics"]
    name = row_label(m["model"]) + (" (shuffled references)" if m.get("shuffled_references") else "")
    return name + (f", ensemble of {r['members']} evaluations" if r.get("members", 1) > 1 else "")


def ensemble_summary(folders: list[Path], replicates: int) -> dict:
    """``row_summary`` of several evaluations of the same queries by one model, scores rank-averaged.

    Refuses folders of another model, of other queries, or that mix own and shuffled references."""
    rows = [read_eval(f) for f in folders]
    first, ids = rows[0], rows[0]["ids"]
    for f, r in zip(folders[1:], rows[1:]):
        if r["metrics"]["model"] != first["metrics"]["model"]:
            raise InputError(f, f"model {r['metrics']['model']}, not {first['metrics']['model']} as in {folders[0]}: "
                                "an ensemble is of one model's checkpoints")
        if bool(r["metrics"].get("shuffled_references")) != bool(first["metrics"].get("shuffled_references")):
            raise InputError(f, f"mixes own and shuffled references with {folders[0]}")
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
    return row_summary(folders[0], replicates) if len(folders) == 1 else ensemble_summary(folders, replicates)


def compare_evals(a: Path | list[Path], b: Path | list[Path], replicates: int = 2000) -> str:
    fa, fb = ([a] if isinstance(a, Path) else list(a)), ([b] if isinstance(b, Path) else list(b))
    ra, rb = summary(fa, replicates), summary(fb, replicates)
    na, nb = ",".join(map(str, fa)), ",".join(map(str, fb))
    common = set(ra["ids"]) & set(rb["ids"])
    if not common:
        raise InputError(nb, f"no query in common with {na}: compare two evaluations of the same split")
    lines = [f"A {na}: {_name(ra)} on {ra['n']} queries of {ra['shapes']} shapes: AUC {fmt_interval(ra['auc'])}",
             f"B {nb}: {_name(rb)} on {rb['n']} queries of {rb['shapes']} shapes: AUC {fmt_interval(rb['auc'])}",
             f"A - B on their {len(common)} common queries (paired, {replicates} shape replicates): "
             f"{fmt_interval(paired_auc(ra, rb, replicates), signed=True)}"]
    ma, mb = ra["metrics"], rb["metrics"]
    if ma.get("checkpoint") == mb.get("checkpoint") and mb.get("shuffled_references") and not ma.get("shuffled_references"):
        sens = reference_sensitivity({"preds": ra.get("raw_preds", ra["preds"])},
                                     {"preds": rb.get("raw_preds", rb["preds"])}, replicates)
        if sens is not None:
            unit = "points (mean score over the ensemble)" if ra.get("members", 1) > 1 else "points"
            lines.append(f"wrong reference, {sens['n']} normal queries: scored higher {fmt_interval(sens['rises'])} % "
                         f"(50 = reference ignored), mean score change {fmt_interval(sens['change'], signed=True)} {unit}")
    return "\n".join(lines) + "\n"
