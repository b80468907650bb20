"""reproduce table2 end to end on the smoke preset: every stage runs through the CLI, the report has
its rows, intervals and the shuffled-reference control, and a second call skips everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from brokenchairs.cli import main

pytestmark = pytest.mark.blender


def test_reproduce_smoke_writes_table2_and_resumes(tmp_path):
    out = tmp_path / "t2"
    res = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    text = (out / "table2.md").read_text()
    assert "Trained and scored on cpu." in text and json.loads((out / "table2.json").read_text())["device"] == "cpu"
    assert "--device cpu" in (out / "logs" / "train-cmt.log").read_text().splitlines()[0]
    assert "ResNet18-FPN" in text and "| ✓ | CMT |" in text and "shuffled references" in text
    blocks, block = [], []
    for line in text.splitlines() + [""]:  # every Markdown table: one column count for all its lines
        if line.startswith("|"):
            block.append(line.count("|"))
        elif block:
            blocks, block = blocks + [block], []
    assert len(blocks) >= 2 and all(len(set(b)) == 1 for b in blocks), blocks
    report = json.loads((out / "table2.json").read_text())
    cmt = report["rows"]["cmt"]
    assert cmt["auc"]["low"] <= cmt["auc"]["value"] <= cmt["auc"]["high"]
    assert "minus_baseline" in cmt and "shuffled_drop" in cmt and "shuffled_drop" not in report["rows"]["resnet18-fpn"]
    sens = cmt["reference_sensitivity"]  # the normal test queries, each scored with its own and a wrong reference
    assert 0 <= sens["rises"]["low"] <= sens["rises"]["value"] <= sens["rises"]["high"] <= 1
    assert sens["n"] == sum(1 for line in (out / "runs" / "cmt" / "eval-test" / "predictions.csv").open()
                            if line.split(",")[3] == "0")
    assert (out / "roc.png").is_file() and (out / "examples.png").is_file()
    assert "no near-miss control" in res.output and not (out / "runs" / "cmt" / "eval-near-miss").exists()  # 6 families
    for row in ("resnet18-fpn", "cmt"):
        assert (out / "runs" / row / "complete.json").is_file()
    again = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "running" not in again.output and again.output.count("skipped") >= 6
    # --set epochs=2 extends both finished trainings, rescored; the report names the command;
    # --score-epochs 1,2 also scores both epochs' checkpoints, read as one checkpoint ensemble per row
    longer = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--set", "epochs=2",
                                       "--score-epochs", "1,2"])
    assert longer.exit_code == 0, longer.output + repr(longer.exception)
    for row in ("resnet18-fpn", "cmt"):
        assert json.loads((out / "runs" / row / "config.json").read_text())["epochs"] == 2
        assert (out / "runs" / row / "epoch-002.pt").is_file()
    assert "--preset smoke --score-epochs 1,2 --set epochs=2`" in (out / "table2.md").read_text()
    report = json.loads((out / "table2.json").read_text())
    assert report["sets"] == {"epochs": "2"} and report["score_epochs"] == [1, 2]
    members = [out / "runs" / "cmt" / name for name in ("eval-test-e001", "eval-test")]  # epoch 2's is last.pt's
    for name, folder in zip(("epoch-001.pt", "last.pt"), members):
        assert json.loads((folder / "metrics.json").read_text())["checkpoint"].endswith(name)
    assert (out / "runs" / "cmt" / "eval-shuffled-e001").is_dir() and not (out / "runs" / "cmt" / "eval-test-e002").exists()
    assert not (out / "runs" / "resnet18-fpn" / "eval-shuffled-e001").exists()
    labels, ranks = _rank_mean(members)
    ens = report["rows"]["cmt"]["ensemble"]
    assert ens["auc"]["value"] == pytest.approx(roc_auc_score(labels, ranks)) and len(ens["evaluations"]) == 2
    assert ens["shuffled_drop"] is not None and report["rows"]["resnet18-fpn"]["ensemble"]["shuffled_auc"] is None
    assert "**Checkpoint ensembles** (`--score-epochs 1,2`)" in (out / "table2.md").read_text()
    # --seeds 2: a second training of each row (training seed + 1) beside the kept first ones, and its spread
    seeds = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--set", "epochs=2",
                                      "--seeds", "2", "--score-epochs", "1,2"])
    assert seeds.exit_code == 0, seeds.output + repr(seeds.exception)
    assert "train-cmt: complete (2 epochs), skipped" in seeds.output and "train-cmt.seed1: running" in seeds.output
    report = json.loads((out / "table2.json").read_text())
    for row in ("resnet18-fpn", "cmt"):
        config = json.loads((out / "runs" / f"{row}.seed1" / "config.json").read_text())
        assert (config["seed"], config["epochs"]) == (json.loads((out / "runs" / row / "config.json").read_text())["seed"] + 1, 2)
        aucs = [json.loads((out / "runs" / f / "eval-test" / "metrics.json").read_text())["auc"] for f in (row, f"{row}.seed1")]
        assert report["rows"][row]["seeds"]["auc"]["values"] == aucs
        assert report["rows"][row]["seeds"]["auc"]["mean"] == pytest.approx(sum(aucs) / 2)
    change = report["rows"]["cmt"]["seeds"]["wrong_reference_change"]["values"]
    assert change[0] == pytest.approx(report["rows"]["cmt"]["reference_sensitivity"]["change"]["value"])
    assert change[1] is not None and "wrong_reference_change" not in report["rows"]["resnet18-fpn"]["seeds"]
    assert not (out / "runs" / "cmt.seed1" / "eval-partnet").exists()  # out of domain: the first training only
    assert "A second training" in (out / "table2.md").read_text() and report["seeds"] == 2
    assert "eval-cmt-test-e001: done, skipped" in seeds.output  # the first training's checkpoints are not rescored
    assert len(report["rows"]["cmt"]["ensemble"]["evaluations"]) == 4  # 2 epochs x 2 trainings
    # --data: another run folder trains and scores on this dataset, generating nothing; --rows: CMT alone
    other = tmp_path / "t2-given"
    given = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(other), "--data",
                                      str(out / "data"), "--device", "cpu", "--rows", "cmt"])
    assert given.exit_code == 0, given.output + repr(given.exception)
    assert f"generate-procedural: given ({out / 'data'}), skipped" in given.output and not (other / "data").exists()
    assert "running" not in "".join(line for line in given.output.splitlines(True) if "generate" in line or "views-proc" in line)
    assert f"--data {out / 'data'} --rows cmt`" in (other / "table2.md").read_text()
    assert not (other / "runs" / "resnet18-fpn").exists() and list(json.loads((other / "table2.json").read_text())["rows"]) == ["cmt"]
    scored_on = json.loads((other / "runs" / "cmt" / "eval-test" / "metrics.json").read_text())["data"]
    assert Path(scored_on).resolve() == (out / "data").resolve()


def _rank_mean(folders):
    """Labels and the mean within-folder rank / n of each query over eval folders (by sample id)."""
    import csv

    from scipy.stats import rankdata

    rows = [{r["sample_id"]: r for r in csv.DictReader((f / "predictions.csv").open())} for f in folders]
    ids = sorted(rows[0])
    labels = [int(rows[0][i]["label"]) for i in ids]
    return labels, sum(rankdata([float(r[i]["score"]) for i in ids]) / len(ids) for r in rows) / len(rows)


def test_reproduce_refuses_an_unknown_set_key_before_anything_runs(tmp_path):
    out = tmp_path / "t2"
    res = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--set", "epoch=2"])
    assert res.exit_code == 2 and "unknown training option 'epoch'" in res.stderr, res.stderr
    assert not out.exists()
    # a --data folder that is no complete dataset: one line naming it, nothing written
    res = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--data", str(tmp_path)])
    assert res.exit_code == 2 and "--data is not a complete dataset" in res.stderr and str(tmp_path) in res.stderr
    # a scored checkpoint past the trainings' last epoch, or no list of epochs: one line, nothing written
    res = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--score-epochs", "1,3"])
    assert res.exit_code == 2 and "--score-epochs 3 is past the 1 epochs row resnet18-fpn trains" in res.stderr, res.stderr
    res = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--score-epochs", "last"])
    assert res.exit_code == 2 and "--score-epochs" in res.stderr and "Traceback" not in res.stderr
    res = CliRunner().invoke(main, ["reproduce", "table2", "--preset", "smoke", "--out", str(out), "--rows", "cmt,cnn"])
    assert res.exit_code == 2 and "--rows: unknown model row 'cnn'" in res.stderr, res.stderr
    assert not out.exists()
    assert not out.exists()
