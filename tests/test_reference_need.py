"""Which missing parts only the reference can settle (``benchmark.reference_need``): a missing leg is
"needed" exactly while a training chair has the legless chair's parts, and each subset's AUC is
sklearn's on its anomalies against every normal query; ``compare --by-reference-need`` prints both."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from brokenchairs.dataset.dataset_json import write_dataset
from brokenchairs.generation.shapes.procedural import synth_chair
from brokenchairs.generation.shapes.sources import procedural_refs

SEED = 3


def _counts(shape) -> Counter:
    return Counter(p.label for p in shape.parts())


def _pair():
    """(T, its leg, U): procedural chairs where U has exactly T's parts but one leg fewer."""
    chairs = [synth_chair(SEED, i) for i in range(60)]
    for t in chairs:
        legs = [p for p in t.parts() if p.label == "leg"]
        if not legs:
            continue
        fewer = _counts(t) - Counter({"leg": 1})
        for u in chairs:
            if u is not t and _counts(u) == fewer:
                return t, legs[0], u
    pytest.fail("no procedural chair among the first 60 has another's parts but one leg fewer")


def _dataset(root, train, test, val=(), records=()):
    refs = {r.shape_id: r for r in procedural_refs(60, SEED)}
    ids = [*train, *test, *val]
    write_dataset(root, {"shapes": [refs[s].to_json() for s in ids],
                         "splits": {"shapes": {"train": list(train), "val": list(val), "test": list(test)}},
                         "queries": {"complete": True, "shards": []}})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def _record(sample, shape, kind, part, label=1):
    return {"sample_id": sample, "shape_id": shape, "anomaly_type": kind, "label": label, "unit_id": sample.rsplit("/", 1)[0],
            "part_path": "", "record": {"part_id": part, "type": kind, "shape_id": shape}}


@pytest.fixture()
def case():
    t, leg, u = _pair()
    seat = next(p for p in t.parts() if p.label.startswith("seat"))
    other = next(r.shape_id for r in procedural_refs(60, SEED) if r.shape_id not in (t.shape_id, u.shape_id))
    records = [_record(f"{t.shape_id}/missing/v{v}", t.shape_id, "missing", leg.node_id) for v in range(2)]
    records += [_record(f"{t.shape_id}/missing-seat/v0", t.shape_id, "missing", seat.node_id),
                _record(f"{t.shape_id}/position/v0", t.shape_id, "position", leg.node_id),
                _record(f"{t.shape_id}/normal/v0", t.shape_id, "normal", None, label=0),
                _record(f"{u.shape_id}/missing/v0", u.shape_id, "missing", u.parts()[0].node_id)]
    return t, u, other, records


def test_a_missing_leg_needs_the_reference_while_a_training_chair_has_the_legless_parts(case, tmp_path):
    from brokenchairs.benchmark.reference_need import reference_need

    t, u, other, records = case
    root = _dataset(tmp_path / "ds", [u.shape_id, other], [t.shape_id], records=records)
    need = reference_need(root, "test")
    leg_ids = {f"{t.shape_id}/missing/v0", f"{t.shape_id}/missing/v1"}
    # missing parts of the test split only; a chair without its seat is no training chair's make
    assert need == {**dict.fromkeys(leg_ids, True), f"{t.shape_id}/missing-seat/v0": False}
    # the same leg, once no training chair has the remaining parts: the photo alone can tell
    apart = _dataset(tmp_path / "ds2", [other], [t.shape_id], val=[u.shape_id], records=records)
    assert reference_need(apart, "test") == {**dict.fromkeys(leg_ids, False), f"{t.shape_id}/missing-seat/v0": False}
    assert set(reference_need(root, "train")) == {f"{u.shape_id}/missing/v0"}


def test_need_breakdown_is_sklearns_auc_on_each_subset_and_compare_prints_it(case, tmp_path):
    from brokenchairs.benchmark.evals import row_summary
    from brokenchairs.benchmark.reference_need import need_breakdown
    from brokenchairs.cli import main
    from test_bootstrap_compare import _eval_folder

    t, u, other, records = case
    rng = np.random.default_rng(4)
    n = 90
    ids, shapes = [f"q{i:03d}" for i in range(n)], [f"s{i // 5}" for i in range(n)]
    labels = (np.arange(n) % 3 == 0).astype(int)
    need = {i: bool(k % 2) for k, i in enumerate(i for i, y in zip(ids, labels) if y)}
    own, shuf = rng.uniform(0, 1, n).round(6), rng.uniform(0, 1, n).round(6)
    a = row_summary(_eval_folder(tmp_path / "own", ids, shapes, labels, own), 50)
    b = row_summary(_eval_folder(tmp_path / "shuffled", ids, shapes, labels, shuf, shuffled=True), 50)
    got, got_b = need_breakdown(a, need, 200, {"shuffled": b}), need_breakdown(b, need, 200)
    for name, flag in (("needed", True), ("settled", False)):
        keep = [k for k, i in enumerate(ids) if labels[k] == 0 or need[i] == flag]
        y = labels[keep]
        assert got[name]["anomalies"] == y.sum() == sum(v == flag for v in need.values())
        assert got[name]["auc"].value == pytest.approx(roc_auc_score(y, own[keep]))
        assert got_b[name]["auc"].value == pytest.approx(roc_auc_score(y, shuf[keep]))
        diff = got[name]["shuffled"]
        assert diff.value == pytest.approx(roc_auc_score(y, own[keep]) - roc_auc_score(y, shuf[keep]))
        assert diff.low <= diff.value <= diff.high

    # the CLI reads A's dataset (metrics.json "data"): the case's test split, one leg needed, one seat settled
    root = _dataset(tmp_path / "ds", [u.shape_id, other], [t.shape_id], records=records)
    queries = [r["sample_id"] for r in records if r["shape_id"] == t.shape_id]
    qlabels = [r["label"] for r in records if r["shape_id"] == t.shape_id]
    folders = []
    for name, scores in (("ev", [0.9, 0.8, 0.7, 0.6, 0.1]), ("ev-sh", [0.2, 0.3, 0.7, 0.6, 0.5])):
        f = _eval_folder(tmp_path / name, queries, [t.shape_id] * len(queries), qlabels, scores, shuffled=name == "ev-sh")
        meta = json.loads((f / "metrics.json").read_text())
        (f / "metrics.json").write_text(json.dumps({**meta, "data": str(root), "split": "test"}))
        folders.append(str(f))
    res = CliRunner().invoke(main, ["compare", *folders, "--replicates", "20", "--by-reference-need"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "(needed, 2 anomalies against every normal query): A 100.0" in res.output
    assert "(settled, 1 anomalies against every normal query): A 100.0" in res.output
    assert "--by-reference-need" not in res.output and "needed" not in CliRunner().invoke(main, ["compare", *folders]).output


def test_the_report_splits_each_rows_scores_by_reference_need(case, tmp_path):
    """``reproduce table2`` with a recipe's ``reference_need``: per row and subset, AUC against every
    normal query, CMT minus the query-only row and CMT's shuffled-reference drop, each sklearn's."""
    from dataclasses import replace

    from brokenchairs.benchmark.reproduce import Recipe
    from brokenchairs.benchmark.table2 import write_table2
    from test_bootstrap_compare import _eval_folder

    t, u, other, records = case
    root = _dataset(tmp_path / "ds", [u.shape_id, other], [t.shape_id], records=records)
    mine = [r for r in records if r["shape_id"] == t.shape_id]
    ids = [r["sample_id"] for r in mine] + [f"n{i:02d}/normal/v0" for i in range(12)]
    shapes = [t.shape_id] * len(mine) + [f"n{i // 3}" for i in range(12)]
    labels = np.array([r["label"] for r in mine] + [0] * 12)
    rng = np.random.default_rng(7)
    scores = {name: rng.uniform(0, 1, len(ids)).round(6) for name in ("resnet", "cmt", "shuffled", "near-miss")}
    out = tmp_path / "t2"
    for row, name, folder, shuffled in (("resnet18-fpn", "resnet", "eval-test", False), ("cmt", "cmt", "eval-test", False),
                                        ("cmt", "shuffled", "eval-shuffled", True), ("cmt", "near-miss", "eval-near-miss", False)):
        f = _eval_folder(out / "runs" / row / folder, ids, shapes, labels, scores[name], checkpoint=f"{row}.pt",
                         shuffled=shuffled)
        meta = json.loads((f / "metrics.json").read_text())
        (f / "metrics.json").write_text(json.dumps({**meta, "model": row, "data": str(root), "split": "test",
                                                    **({"references": name} if name == "near-miss" else {})}))
    recipe = replace(Recipe.load("cpu-missing"), score_epochs=(), bootstrap=50)
    assert recipe.reference_need
    text = write_table2(out, recipe, {}).read_text()
    got = json.loads((out / "table2.json").read_text())["reference_need"]
    assert got["counts"] == {"needed": 2, "settled": 1}
    for name, kept in (("needed", {ids[0], ids[1]}), ("settled", {ids[2]})):
        keep = [k for k, i in enumerate(ids) if labels[k] == 0 or i in kept]
        y = labels[keep]
        auc = {k: roc_auc_score(y, s[keep]) for k, s in scores.items()}
        cmt = got["rows"]["cmt"]["last checkpoint"][name]
        assert cmt["anomalies"] == len(kept) and cmt["auc"]["value"] == pytest.approx(auc["cmt"])
        assert cmt["minus_baseline"]["value"] == pytest.approx(auc["cmt"] - auc["resnet"])
        assert cmt["shuffled_drop"]["value"] == pytest.approx(auc["cmt"] - auc["shuffled"])
        base = got["rows"]["resnet18-fpn"]["last checkpoint"][name]
        assert base["auc"]["value"] == pytest.approx(auc["resnet"]) and base["shuffled_drop"] is None
    near = json.loads((out / "table2.json").read_text())["rows"]["cmt"]["near_miss_drop"]["value"]
    assert near == pytest.approx(roc_auc_score(labels, scores["cmt"]) - roc_auc_score(labels, scores["near-miss"]))
    assert "\n| CMT | " in text.split("**Does it compare part by part?**")[1].split("\n\n")[1]
    table = [line for line in text.split("**Where only the reference can tell**")[1].splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4 and len({line.count("|") for line in table}) == 1


def test_stats_splits_missing_parts_by_removed_label_before_any_training(case, tmp_path):
    from brokenchairs.benchmark.reference_need import missing_part_need, need_by_label
    from brokenchairs.cli import main

    t, u, other, records = case
    root = _dataset(tmp_path / "ds", [u.shape_id, other], [t.shape_id], records=records)
    seat = next(p.label for p in t.parts() if p.label.startswith("seat"))
    assert need_by_label(missing_part_need(root, "test")) == [("leg", 2, 2), (seat, 0, 1)]
    res = CliRunner().invoke(main, ["stats", str(root), "--reference-need", "test", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["reference_need"]["by_label"] == [
        {"label": "leg", "needed": 2, "queries": 2}, {"label": seat, "needed": 0, "queries": 1}]
    res = CliRunner().invoke(main, ["stats", str(root), "--reference-need", "test"])
    assert res.exit_code == 0 and "2 of 3 queries (66.7%)" in res.output and "| leg | 2 | 2 |" in res.output, res.output
    res = CliRunner().invoke(main, ["stats", str(root), "--reference-need", "tset"])
    assert res.exit_code == 2 and "tset" in res.output, res.output
