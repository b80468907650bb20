"""Intervals by a bootstrap over test shapes, and ``compare``: the paired AUC difference of two
evaluations and the wrong-reference sensitivity, on real eval folders written by eval's own writer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score


def test_shape_bootstrap_interval_contains_the_value_and_paired_difference_sees_a_real_gap():
    from brokenchairs.benchmark.bootstrap import paired_difference, shape_bootstrap

    rng = np.random.default_rng(0)
    shapes = np.repeat(np.arange(40), 10)
    y = rng.integers(0, 2, 400)
    good = y + rng.normal(0, 0.7, 400)
    bad = y + rng.normal(0, 2.0, 400)
    iv = shape_bootstrap(y, good, shapes, replicates=300)
    assert iv.low < iv.value < iv.high and iv.value == pytest.approx(roc_auc_score(y, good))
    diff = paired_difference(y, good, bad, shapes, replicates=300)
    assert diff.value == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, bad)) and diff.low > 0
    same = paired_difference(y, good, good + 1e-9 * rng.normal(size=400), shapes, replicates=100)
    assert abs(same.low) < 1e-3 and abs(same.high) < 1e-3


def test_rank_auc_is_sklearns_auc_with_ties_and_gives_the_same_intervals():
    from brokenchairs.benchmark.bootstrap import paired_difference, rank_auc, shape_bootstrap

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    tied = rng.integers(0, 7, 300) / 6  # many ties, counted half
    for s in (tied, rng.normal(size=300), y + rng.normal(0, 0.5, 300)):
        assert rank_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert rank_auc(y.astype(bool).astype(int), -s) == pytest.approx(roc_auc_score(y, -s), abs=1e-12)
    shapes = np.repeat(np.arange(30), 10)
    fast, slow = (shape_bootstrap(y, tied, shapes, 200, statistic=f) for f in (rank_auc, roc_auc_score))
    assert (fast.value, fast.low, fast.high) == pytest.approx((slow.value, slow.low, slow.high), abs=1e-12)
    other = rng.normal(size=300)
    fast, slow = (paired_difference(y, tied, other, shapes, 200, statistic=f) for f in (rank_auc, roc_auc_score))
    assert (fast.value, fast.low, fast.high) == pytest.approx((slow.value, slow.low, slow.high), abs=1e-12)


def test_shape_mean_is_the_mean_and_its_interval_widens_with_between_shape_spread():
    from brokenchairs.benchmark.bootstrap import shape_mean

    rng = np.random.default_rng(1)
    shapes = np.repeat(np.arange(30), 8)
    tight = rng.normal(0.2, 0.05, 240)
    spread = tight + np.repeat(rng.normal(0, 0.5, 30), 8)  # a shared offset per shape: images are not independent
    a, b = shape_mean(tight, shapes, replicates=300), shape_mean(spread, shapes, replicates=300)
    assert a.value == pytest.approx(tight.mean()) and a.low < a.value < a.high
    assert (b.high - b.low) > 5 * (a.high - a.low)
    with pytest.raises(ValueError):
        shape_mean([], [], replicates=10)


def _eval_folder(folder, ids, shapes, labels, scores, checkpoint="ck.pt", shuffled=False):
    """An eval folder as ``brokenchairs eval`` writes it (its own writer), for a CMT checkpoint."""
    import json

    from brokenchairs.benchmark.evaluate import write_predictions
    from brokenchairs.benchmark.inference import Predictions

    n = len(ids)
    preds = Predictions(sample_id=list(ids), shape_id=list(shapes), index=np.arange(n), label=np.asarray(labels),
                        code=np.where(np.asarray(labels) == 1, 5, 0), score=np.asarray(scores, float),
                        true_box=np.full((n, 4), np.nan), pred_box=None, view_pred=None, view_true=None)
    folder.mkdir(parents=True)
    write_predictions(folder / "predictions.csv", preds)
    (folder / "metrics.json").write_text(json.dumps({"model": "cmt", "checkpoint": checkpoint, "auc": None,
                                                     "accuracy": None, "shuffled_references": shuffled}))
    return folder


def test_reference_sensitivity_counts_normal_queries_whose_score_rises_with_a_wrong_reference(tmp_path):
    from click.testing import CliRunner

    from brokenchairs.benchmark.evals import reference_sensitivity, row_summary
    from brokenchairs.cli import main

    rng = np.random.default_rng(2)
    n = 120
    ids, shapes = [f"q{i:03d}" for i in range(n)], [f"s{i // 6}" for i in range(n)]
    labels = (np.arange(n) % 3 == 0).astype(int)
    own = rng.uniform(0.05, 0.9, n).round(6)  # predictions.csv keeps 6 decimals
    delta = rng.normal(0.05, 0.1, n)
    delta[:7] = 0.0  # unchanged scores count half
    shuf = np.clip(own + delta, 0, 1).round(6)
    a = _eval_folder(tmp_path / "own", ids, shapes, labels, own)
    b = _eval_folder(tmp_path / "shuffled", ids, shapes, labels, shuf, shuffled=True)
    sens = reference_sensitivity(row_summary(a, 50), row_summary(b, 50), 200)
    normal = labels == 0
    d = (shuf - own)[normal]
    assert sens["n"] == normal.sum()
    assert sens["rises"].value == pytest.approx(((d > 0).sum() + 0.5 * (d == 0).sum()) / normal.sum())
    assert sens["change"].value == pytest.approx(d.mean(), abs=1e-9) and sens["change"].low < d.mean() < sens["change"].high
    # a model that ignores the reference scores every query the same both ways: exactly 50 %, no change
    same = _eval_folder(tmp_path / "same", ids, shapes, labels, own, shuffled=True)
    flat = reference_sensitivity(row_summary(a, 50), row_summary(same, 50), 200)
    assert flat["rises"].value == 0.5 and flat["rises"].low == flat["rises"].high == 0.5 and flat["change"].value == 0

    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--replicates", "100"])
    assert res.exit_code == 0, res.output
    assert f"scored higher {100 * sens['rises'].value:.1f} [" in res.output
    assert f"on their {n} common queries" in res.output and "CMT (shuffled references)" in res.output
    # another checkpoint's evaluation is compared by AUC only; disjoint queries are refused in one line
    other = _eval_folder(tmp_path / "other", ids, shapes, labels, shuf, checkpoint="other.pt", shuffled=True)
    assert "wrong reference" not in CliRunner().invoke(main, ["compare", str(a), str(other)]).output
    apart = _eval_folder(tmp_path / "apart", [f"x{i}" for i in range(n)], shapes, labels, shuf)
    res = CliRunner().invoke(main, ["compare", str(a), str(apart)])
    assert res.exit_code != 0 and "no query in common" in res.output and "Traceback" not in res.output


def test_compare_of_checkpoint_ensembles_rank_averages_scores_and_refuses_mixed_members(tmp_path):
    """Several eval folders on one side of ``compare`` are one checkpoint ensemble: each query scored by
    its mean rank over the folders (AUC equal to sklearn's on those ranks), the wrong-reference change
    read on mean raw scores, and folders of another model or other queries refused in one line."""
    import json

    from click.testing import CliRunner
    from scipy.stats import rankdata

    from brokenchairs.benchmark.compare import compare_evals
    from brokenchairs.benchmark.ensemble import ensemble_summary
    from brokenchairs.benchmark.evals import row_summary
    from brokenchairs.cli import main

    rng = np.random.default_rng(3)
    n = 90
    ids, shapes = [f"q{i:03d}" for i in range(n)], [f"s{i // 5}" for i in range(n)]
    labels = (np.arange(n) % 3 == 0).astype(int)
    signal = labels * 0.3
    own = [np.clip(signal + rng.normal(0.3, 0.2, n), 0, 1).round(6) for _ in range(3)]
    own[1] = (own[1] * 0.1).round(6)  # another calibration: ranks are unchanged by it, raw means are not
    shuf = [np.clip(o + 0.05, 0, 1).round(6) for o in own]
    a = [_eval_folder(tmp_path / f"e{k}", ids, shapes, labels, o, checkpoint=f"e{k}.pt") for k, o in enumerate(own)]
    b = [_eval_folder(tmp_path / f"e{k}-shuf", ids, shapes, labels, s, checkpoint=f"e{k}.pt", shuffled=True)
         for k, s in enumerate(shuf)]

    ens = ensemble_summary(a, replicates=100)
    ranks = np.mean([rankdata(o) / n for o in own], axis=0)
    assert ens["auc"].value == pytest.approx(roc_auc_score(labels, ranks)) and ens["members"] == 3
    # one member, or one member twice, is that member's AUC
    one = row_summary(a[0], 100)["auc"].value
    assert ensemble_summary([a[0], a[0]], 100)["auc"].value == pytest.approx(one)

    text = compare_evals(a, b, replicates=200)
    assert "ensemble of 3 evaluations" in text and "wrong reference" in text
    normal = labels == 0
    change = (np.mean(shuf, axis=0) - np.mean(own, axis=0))[normal].mean()
    assert f"mean score change {100 * change:+.1f} [" in text
    # only the same checkpoints scored both ways give the wrong-reference line
    assert "wrong reference" not in compare_evals(a, b[:2], replicates=50)

    res = CliRunner().invoke(main, ["compare", ",".join(map(str, a)), ",".join(map(str, b)), "--replicates", "50"])
    assert res.exit_code == 0 and "ensemble of 3 evaluations" in res.output, res.output

    other_model = _eval_folder(tmp_path / "resnet", ids, shapes, labels, own[0])
    meta = json.loads((other_model / "metrics.json").read_text())
    (other_model / "metrics.json").write_text(json.dumps(dict(meta, model="resnet18-fpn")))
    fewer = _eval_folder(tmp_path / "fewer", ids[:-1], shapes[:-1], labels[:-1], own[0][:-1])
    for bad, words in ((other_model, "an ensemble is of one model"), (fewer, "other queries"), (b[0], "shuffled")):
        res = CliRunner().invoke(main, ["compare", f"{a[0]},{bad}", str(a[1])])
        assert res.exit_code == 2 and words in res.output and str(bad) in res.output and "Traceback" not in res.output


def test_report_checkpoint_ensembles_rank_average_each_rows_scored_epochs(tmp_path):
    """``reproduce table2 --score-epochs``: each row's scored checkpoints (eval-test-eNNN) form one
    ensemble, CMT's minus the query-only row's paired, and its shuffled-reference ensemble of the same
    checkpoints gives the drop; a row missing one shuffled member gets no shuffled ensemble; a training's
    final epoch is read from its last.pt scores (eval-test), not scored twice."""
    from types import SimpleNamespace

    from scipy.stats import rankdata

    from brokenchairs.benchmark.table2 import checkpoint_evals, ensemble_rows

    rng = np.random.default_rng(4)
    n = 80
    ids, shapes = [f"q{i:03d}" for i in range(n)], [f"s{i // 4}" for i in range(n)]
    labels = (np.arange(n) % 2 == 0).astype(int)
    scores = {}
    for row, strength in (("resnet18-fpn", 0.1), ("cmt", 0.4), ("cmt-a", 0.2)):
        for e in (1, 2):
            own, shuf = checkpoint_evals(e, final=row == "cmt" and e == 2)  # CMT's epoch 2 is its last.pt
            s = np.clip(labels * strength + rng.normal(0.3, 0.2, n), 0, 1).round(6)
            scores[row, e] = s
            _eval_folder(tmp_path / row / own, ids, shapes, labels, s, checkpoint=f"{row}/epoch-00{e}.pt")
            if row != "resnet18-fpn" and (row, e) != ("cmt-a", 2):
                _eval_folder(tmp_path / row / shuf, ids, shapes, labels, (s * 0.5).round(6),
                             checkpoint=f"{row}/epoch-00{e}.pt", shuffled=True)
    (tmp_path / "cmt" / "config.json").write_text('{"epochs": 2}')
    recipe = SimpleNamespace(rows=("resnet18-fpn", "cmt-a", "cmt"), baseline="resnet18-fpn", seeds=1, score_epochs=(1, 2))
    ens = ensemble_rows(tmp_path, recipe, replicates=100)

    def auc(row):
        return roc_auc_score(labels, np.mean([rankdata(scores[row, e]) / n for e in (1, 2)], axis=0))

    for row in recipe.rows:
        assert ens[row]["own"]["auc"].value == pytest.approx(auc(row)) and len(ens[row]["folders"]) == 2
    assert ens["cmt"]["folders"][1] == tmp_path / "cmt" / "eval-test"
    assert ens["cmt"]["minus_baseline"].value == pytest.approx(auc("cmt") - auc("resnet18-fpn"))
    # halving every score leaves each checkpoint's ranks alone: no drop, and the raw mean score falls
    assert ens["cmt"]["drop"].value == pytest.approx(0) and ens["cmt"]["sensitivity"]["change"].value < 0
    assert "shuffled" not in ens["resnet18-fpn"] and "shuffled" not in ens["cmt-a"]
