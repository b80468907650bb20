"""End to end on tiny real data: generate (Cycles, 64x64) -> render-views -> train --preset tiny ->
eval -> report -> predict; exact resume; a 2-process DDP (gloo) run; bad input exits 2 naming the file."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from brokenchairs.benchmark.config import resolve_config
from brokenchairs.dataset.index import DatasetIndex
from brokenchairs.benchmark.data import ShardDataset
from brokenchairs.benchmark.device import compute_dtype
from brokenchairs.benchmark.train import train
from brokenchairs.cli import main

pytestmark = pytest.mark.blender
TINY = ["--preset", "tiny", "--set", "split=all", "--set", "val_split=all"]


def _cli(*args, code=0):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == code, res.output + (res.stderr or "") + repr(res.exception)
    return res


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    ds = root / "ds"
    _cli("generate", "--out", ds, "--balance", "every-shape", "--num-shapes", "3", "--resolution", "64", "--samples", "2", "--views-per-variant", "2",
         "--seed", "2", "--workers", "2")
    _cli("render-views", "--out", ds, "--resolution", "64", "--views", "6", "--workers", "1")
    return ds


def _losses(run: Path) -> list[float]:
    with (run / "metrics.csv").open() as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["kind"] == "train"]


def test_dataset_samples_match_the_shards(data):
    index = DatasetIndex.open(data, "all")
    ds = ShardDataset(index, views=4, train=True)
    s = ds[(0, 123)]
    assert s["query"].dtype == torch.uint8 and s["query"].shape == (3, 64, 64)
    assert s["views"].shape == (4, 64, 64) and s["patch_xyz"].shape == (4, 8, 8, 3) and s["view_depth"].shape == (4, 64, 64)
    assert torch.equal(ds[(0, 123)]["query"], s["query"])  # the seed, not a global stream, decides augmentation
    plain = ShardDataset(index, views=20, train=False)
    q = index.queries[0]
    with h5py.File(q.shard) as f:
        assert torch.equal(plain[0]["query"], torch.from_numpy(f["image"][q.row]).permute(2, 0, 1))
    assert plain[0]["views"].shape[0] == 6  # all views at test time
    for i in range(len(index)):  # the view cache serves every query of a shape after its first
        plain[i]
    assert plain.cache_misses == 3 and plain.cache_hits + plain.cache_misses == len(index) + 2


def test_a_wrong_reference_sample_is_its_normal_photo_beside_a_kins_views_labelled_anomalous(data):
    index = DatasetIndex.open(data, "all")
    ds = ShardDataset(index, views=4, train=True, with_query_xyz=True)
    i = next(k for k, q in enumerate(index.queries) if q.label == 0)
    other = next(s for s in index.shapes() if s != index.queries[i].shape_id)
    own, wrong = ds[(i, 7, 9)], ds[(i, 7, 9, other)]
    assert torch.equal(own["query"], wrong["query"])  # the same photo, the same flip and crop
    assert (int(own["label"]), int(wrong["label"])) == (0, 1) and bool(wrong["wrong_reference"]) and not bool(own["wrong_reference"])
    assert not bool(wrong["has_box"]) and not wrong["mask"].any()  # nothing to localise
    assert torch.equal(wrong["views"], torch.from_numpy(ds.shape_views(other)["gray"][wrong["view_ids"].numpy()]))
    assert own["query_xyz_valid"].any() and not wrong["query_xyz_valid"].any()  # VLFA pairs no query cell with a kin's views
    assert int(wrong["view_group"]) != int(own["view_group"])


def test_training_with_wrong_references_records_the_option_and_learns_from_both_kinds(data, tmp_path):
    run = tmp_path / "run"
    _cli("train", "--model", "cmt", "--data", data, "--out", run, *TINY, "--set", "val_split=", "--set", "wrong_reference=0.5",
         "--set", "wrong_reference_kin=any", "--set", "box_head=true", "--epochs", "1")
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["wrong_reference"], cfg["wrong_reference_kin"]) == (0.5, "any")
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r["kind"] == "train"]
    assert rows and all(np.isfinite(float(r[k])) for r in rows for k in ("loss", "bce", "va_vv", "box_l1"))
    _cli("train", "--model", "resnet18-fpn", "--data", data, "--out", tmp_path / "q", *TINY, "--set", "wrong_reference=0.5",
         "--set", "wrong_reference_kin=any", code=2)


def test_train_eval_report_end_to_end(data, tmp_path):
    run = tmp_path / "run"
    _cli("train", "--model", "cmt", "--data", data, "--out", run, *TINY, "--set", "cell_weight=1")
    assert {"config.json", "metrics.csv", "last.pt", "epoch-001.pt", "epoch-002.pt"} <= {p.name for p in run.iterdir()}
    assert list((run / "tb").glob("events.out.tfevents.*"))
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["preset"] == "tiny" and cfg["epochs"] == 2 and cfg["model"] == "cmt"
    assert cfg["compute_dtype"] == compute_dtype("cpu", cfg["amp"])  # what amp meant on this machine
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert any(r["kind"] == "val" and r["auc"] for r in rows) and all(r["cell"] for r in rows if r["kind"] == "train")
    out = tmp_path / "eval"
    _cli("eval", "--model", "cmt", "--checkpoint", run / "last.pt", "--data", data, "--split", "all", "--out", out)
    m = json.loads((out / "metrics.json").read_text())
    for key in ("auc", "accuracy", "precision", "recall", "f1", "normal_accuracy", "anomaly_accuracy", "per_type",
                "box_ap50", "mean_iou", "viewpoint_accuracy", "cell_auc", "cell_localisation_auc"):
        assert key in m, key
    assert 0 <= m["cell_localisation_auc"] <= 1
    assert m["compute_dtype"] == compute_dtype("cpu", True)
    fp32 = tmp_path / "eval-fp32"
    _cli("eval", "--model", "cmt", "--checkpoint", run / "last.pt", "--data", data, "--split", "all", "--out", fp32,
         "--no-amp")
    m32 = json.loads((fp32 / "metrics.json").read_text())
    assert m32["compute_dtype"] == "fp32" and m32["n"] == m["n"]
    scores = {tag: [float(r["score"]) for r in csv.DictReader((d / "predictions.csv").open())] for tag, d in
              (("amp", out), ("fp32", fp32))}
    assert max(abs(a - b) for a, b in zip(scores["amp"], scores["fp32"])) < 0.05  # same queries, same order
    assert 0 <= m["auc"] <= 1 and m["n"] == len(DatasetIndex.open(data, "all"))
    preds = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(preds) == m["n"] and {"sample_id", "score", "box_x0", "view_pred"} <= set(preds[0])
    for png in ("roc.png", "examples.png"):
        assert Image.open(out / png).size[0] > 100
    table = _cli("report", out, "--out", tmp_path / "t2.md").output
    assert "| ✓ | CMT |" in table and (tmp_path / "t2.md").read_text() in table


def test_resume_continues_the_exact_loss_trajectory(data, tmp_path):
    cfg = resolve_config("cmt", "tiny", overrides={"split": "all", "val_split": "test", "max_steps_per_epoch": 5})
    full = train(cfg, data, tmp_path / "full", progress=False)
    part = train(cfg, data, tmp_path / "cut", progress=False, stop_after_steps=3)
    assert part.interrupted and part.steps == 3
    rest = train(cfg, data, tmp_path / "cut", resume=True, progress=False)
    assert rest.steps == full.steps == 10
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "full")
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_persistent_loader_workers_train_exactly_as_the_main_process_over_epochs(data, tmp_path):
    """One DataLoader serves every epoch (its workers keep their view caches); each epoch's order still comes
    from set_epoch, so two epochs with 2 workers give the losses of two epochs loaded in the main process."""
    over = {"split": "all", "val_split": "", "max_steps_per_epoch": 3, "epochs": 2}
    main = train(resolve_config("cmt", "tiny", overrides=over | {"workers": 0}), data, tmp_path / "w0", progress=False)
    pooled = train(resolve_config("cmt", "tiny", overrides=over | {"workers": 2}), data, tmp_path / "w2", progress=False)
    assert main.steps == pooled.steps == 6 and main.epochs_done == 2
    assert _losses(tmp_path / "w2") == _losses(tmp_path / "w0")


def test_a_finished_run_extended_by_resume_with_more_epochs_equals_the_longer_run(data, tmp_path):
    """`train --resume --epochs N` on a finished run trains on to N epochs, exactly the run that was
    asked for N from the start (reproduce uses it when a recipe asks for more epochs)."""
    base = ["train", "--model", "resnet18-fpn", "--data", data, "--device", "cpu", *TINY, "--set", "val_split=",
            "--set", "max_steps_per_epoch=3"]
    _cli(*base, "--out", tmp_path / "long", "--epochs", "2")
    _cli(*base, "--out", tmp_path / "short", "--epochs", "1")
    assert len(_losses(tmp_path / "short")) == 3
    _cli(*base, "--out", tmp_path / "short", "--resume", "--epochs", "2")
    assert _losses(tmp_path / "short") == _losses(tmp_path / "long") and len(_losses(tmp_path / "long")) == 6
    assert json.loads((tmp_path / "short" / "config.json").read_text())["epochs"] == 2
    a = torch.load(tmp_path / "long" / "last.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "short" / "last.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    here = compute_dtype("cpu", True)
    assert json.loads((tmp_path / "short" / "config.json").read_text())["compute_dtype"] == here


def test_a_run_resumed_in_another_arithmetic_says_so_and_records_both(data, tmp_path):
    """A run trained in one compute dtype and continued in another (the same run on a machine with or
    without AMX) keeps both in config.json and says so on stderr, rather than relabelling its past."""
    run = tmp_path / "run"
    base = ["train", "--model", "resnet18-fpn", "--data", data, "--device", "cpu", *TINY, "--set", "val_split=",
            "--set", "max_steps_per_epoch=2", "--out", run]
    _cli(*base, "--epochs", "1")
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(cfg | {"compute_dtype": "other"}))
    res = _cli(*base, "--resume", "--epochs", "2")
    here = compute_dtype("cpu", True)
    assert f"trained in other until epoch 1, continues in {here}" in res.stderr
    assert json.loads((run / "config.json").read_text())["compute_dtype"] == f"other to epoch 1, then {here}"
    _cli(*base, "--resume", "--epochs", "3")  # continuing in the same arithmetic keeps the history as it is
    assert json.loads((run / "config.json").read_text())["compute_dtype"] == f"other to epoch 1, then {here}"


def _train_cmd(data: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "brokenchairs", "train", "--model", "cmt", "--data", str(data), "--out", str(run),
            "--device", "cpu", *TINY, "--set", "val_split=", "--epochs", "1", "--checkpoint-every", "2", *extra]


def _logged_steps(run: Path) -> int:
    path = run / "metrics.csv"
    return sum(1 for line in path.read_text().splitlines()[1:] if line.startswith("train,")) if path.exists() else 0


def test_sigkill_mid_epoch_then_resume_continues_the_exact_loss_trajectory(data, tmp_path):
    """A real `brokenchairs train` killed with SIGKILL (no handler runs: the OOM killer, a lost node)
    at a random step of its one epoch; --resume continues from the last --checkpoint-every checkpoint
    with the losses of an uninterrupted run, step for step, and ends with the same weights."""
    import random
    import signal
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1")
    full = subprocess.run(_train_cmd(data, tmp_path / "full"), capture_output=True, text=True, env=env, timeout=900)
    assert full.returncode == 0, full.stderr[-3000:]
    reference = _losses(tmp_path / "full")
    n = len(reference)
    assert n >= 6  # steps enough to kill between checkpoints
    kill_at = random.randint(3, n - 1)
    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(data, run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        while proc.poll() is None and _logged_steps(run) < kill_at:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    seen = _logged_steps(run)
    assert proc.returncode == -signal.SIGKILL and kill_at <= seen < n, (kill_at, seen, proc.returncode)
    saved = torch.load(run / "last.pt", weights_only=False)
    # the last checkpoint: at most --checkpoint-every steps back (that many when the kill caught its successor
    # being written, which then left the previous one whole), inside the epoch
    assert seen - 2 <= saved["step"] <= seen and saved["pos"] > 0, (seen, saved["step"])
    rest = subprocess.run(_train_cmd(data, run, "--resume"), capture_output=True, text=True, env=env, timeout=900)
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert _losses(run) == reference, f"killed at step {seen}, resumed from {saved['step']}"
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["state_dict"]
    b = torch.load(run / "last.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.glob("*.tmp-*"))


def test_a_last_batch_of_one_is_dropped_at_32x32(tmp_path):
    """At 32x32 ResNet's last stage is 1x1: a batch of one sample cannot pass BatchNorm in training.
    Every training batch is full (the authors' drop_last), so a split of n queries and batch n - 1 trains."""
    ds = tmp_path / "ds32"
    _cli("generate", "--out", ds, "--num-shapes", "2", "--resolution", "32", "--samples", "1", "--views-per-variant", "1",
         "--seed", "3", "--workers", "1")
    _cli("render-views", "--out", ds, "--resolution", "32", "--views", "4", "--workers", "1")
    n = len(DatasetIndex.open(ds, "all"))
    assert n >= 3
    res = _cli("train", "--model", "cmt", "--data", ds, "--out", tmp_path / "run", *TINY, "--epochs", "2",
               "--batch-size", n - 1)
    assert "(2 steps" in res.output


def test_two_process_ddp_with_gloo_trains_and_saves_once(data, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "brokenchairs", "train", "--model", "cmt-d", "--data", str(data),
           "--out", str(run), "--device", "cpu", "--epochs", "1", *TINY, "--set", "max_steps_per_epoch=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert sorted(p.name for p in run.glob("*.pt")) == ["epoch-001.pt", "last.pt"]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [int(r["step"]) for r in train_rows] == [1, 2]  # one writer: each step logged once
    assert res.stdout.count("trained cmt-d") == 1


def test_predict_scores_a_rendered_photo_against_its_mesh(data, tmp_path):
    run = tmp_path / "run"
    _cli("train", "--model", "cmt", "--data", data, "--out", run, *TINY, "--epochs", "1", "--set", "max_steps_per_epoch=2")
    _cli("shapes", "synth", "--count", "1", "--seed", "2", "--out", tmp_path / "chairs")
    _cli("shapes", "export", tmp_path / "chairs" / "synth-2-00000", "--out", tmp_path / "chair.obj")
    q = DatasetIndex.open(data, "all").queries[0]
    with h5py.File(q.shard) as f:
        photo = Image.fromarray(f["image"][q.row]).resize((150, 100))  # another size and aspect
    photo.save(tmp_path / "photo.jpg")
    Image.new("RGB", (80, 80), (40, 90, 40)).save(tmp_path / "green.png")
    out = tmp_path / "pred"
    res = _cli("predict", "--mesh", tmp_path / "chair.obj", "--image", tmp_path / "photo.jpg", "--image",
               tmp_path / "green.png", "--checkpoint", run / "last.pt", "--out", out, "--views", "6")
    assert "score" in res.output and "background is not white" in res.output
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == 2 and all(0 <= p["score"] <= 1 for p in preds)
    assert preds[0]["white_background"] and not preds[1]["white_background"]
    assert Image.open(out / "photo-overlay.png").size == (256, 256)


def test_bad_input_names_the_file_and_exits_2(data, tmp_path):
    run = tmp_path / "vit"
    _cli("train", "--model", "resnet18-fpn", "--data", data, "--out", run, *TINY, "--epochs", "1",
         "--set", "max_steps_per_epoch=1")
    res = _cli("eval", "--model", "cmt", "--checkpoint", run / "last.pt", "--data", data, "--out", tmp_path / "e", code=2)
    assert "last.pt" in res.output and "resnet18-fpn" in res.output
    # a dataset whose views were never rendered
    noviews = tmp_path / "noviews"
    shutil.copytree(data, noviews)
    meta = json.loads((noviews / "dataset.json").read_text())
    meta.pop("views")
    (noviews / "dataset.json").write_text(json.dumps(meta))
    _cli("eval", "--checkpoint", tmp_path / "vit" / "last.pt", "--data", noviews, "--out", tmp_path / "e2",
         "--split", "all")  # resnet18-fpn needs no views: it runs
    res = _cli("train", "--model", "cmt", "--data", noviews, "--out", tmp_path / "r2", *TINY, code=2)
    assert "dataset.json" in res.output and "render-views" in res.output and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r2").exists()  # every input is checked before the run folder is made
    for bad, msg in ((["--set", "log_every=0"], "log_every must be at least 1"),
                     (["--set", "momentum=2"], "momentum must be in 0..1"),
                     (["--batch-size", "100000"], "fewer than batch_size 100000"),
                     (["--checkpoint-every", "-1"], "Invalid value for '--checkpoint-every'"),
                     (["--set", "twins=true"], "holds no normal twins (generate with --twins)"),
                     (["--set", "pair_weight=1"], "pair_weight > 0 needs twins=true"),
                     (["--set", f"init_from={tmp_path / 'none.pt'}"], "none.pt: checkpoint file does not exist")):
        res = _cli("train", "--model", "cmt", "--data", data, "--out", tmp_path / "r3", *TINY, *bad, code=2)
        assert msg in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert not (tmp_path / "r3").exists()
    # an empty split (dataset.json's recorded splits put every shape in train)
    meta = json.loads((data / "dataset.json").read_text())
    meta["splits"] = {"shapes": {"train": [r["shape_id"] for r in meta["shapes"]], "val": [], "test": []}}
    (noviews / "dataset.json").write_text(json.dumps(meta))
    res = _cli("eval", "--checkpoint", tmp_path / "vit" / "last.pt", "--data", noviews, "--out", tmp_path / "e5", code=2)
    assert "split 'test' holds no queries" in res.output
    # a corrupt (truncated) shard
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    shard = sorted((broken / "shards").glob("queries-*.h5"))[0]
    shard.write_bytes(shard.read_bytes()[:4096])
    res = _cli("train", "--model", "cmt", "--data", broken, "--out", tmp_path / "r4", *TINY, code=2)
    assert shard.name in res.output
    # a checkpoint that is not one
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    res = _cli("eval", "--checkpoint", tmp_path / "junk.pt", "--data", data, "--out", tmp_path / "e3", code=2)
    assert "junk.pt" in res.output



def test_query_location_field_follows_augmentation_and_pairs_the_same_3d_points(data):
    """query_xyz (the query's true location field) is flipped and cropped with the image, and the
    camera-labelled query-view pairs of VLFA join cells that see the same 3D point."""
    from torch.utils.data import default_collate

    from brokenchairs.benchmark.data import prepare_batch
    from brokenchairs.models.vlfa import view_view_pairs

    import numpy as np

    from brokenchairs.benchmark.data import augment

    index = DatasetIndex.open(data, "all")
    plain = ShardDataset(index, views=4, train=False, with_query_xyz=True)
    q = index.queries[0]
    with h5py.File(q.shard) as f:
        obj = torch.from_numpy(f["object_mask"][q.row])
        image = torch.from_numpy(f["image"][q.row]).permute(2, 0, 1)
        points = plain._query_points(f, q)
    cells = obj.reshape(8, 8, 8, 8).any(3).any(1)
    assert torch.equal(plain[0]["query_object"], cells)  # the location field covers the object's cells
    assert (plain[0]["query_xyz_valid"] <= plain[0]["query_object"]).all()
    # the points go through the same flip and crop as the image and its masks
    for seed in range(6):
        _, mask2, _, points2 = augment(image, obj, torch.full((4,), float("nan")), np.random.default_rng(seed), points=points)
        assert (torch.isfinite(points2).all(0) == mask2).float().mean() > 0.99
    ds = ShardDataset(index, views=4, train=True, with_query_xyz=True)
    items = [ds[(i, 1000 + i)] for i in range(min(8, len(index)))]
    b = prepare_batch(default_collate(items), "cpu")
    rows = torch.arange(len(items))
    for v in range(4):
        view = torch.full((len(items),), v)
        pairs = view_view_pairs(b["query_xyz_valid"].flatten(1), b["query_xyz"].flatten(1, 2), b["patch_valid"].flatten(2)[rows, view],
                                b["view_K"][rows, view], b["view_world_to_cam"][rows, view], b["view_depth"][rows, view],
                                8, 8, 32)
        for s, ia, ib in pairs:
            gap = (b["query_xyz"].flatten(1, 2)[s, ia] - b["patch_xyz"].flatten(2, 3)[s, v][ib]).norm(dim=-1)
            assert gap.median() < 0.1  # a cell at 64x64 spans ~0.1 of the unit diagonal


def test_train_config_layers_read_back_from_config_json(data, tmp_path):
    """preset < --config < --set < flag, through the CLI, as RUN/config.json records it."""
    f = tmp_path / "c.json"
    f.write_text('{"lr": 0.01, "seed": 3, "log_every": 2, "epochs": 3, "batch_size": 3}')
    run = tmp_path / "run"
    _cli("train", "--model", "resnet18-fpn", "--data", data, "--out", run, "--device", "cpu", "--preset", "tiny",
         "--config", f, "--set", "split=all", "--set", "val_split=", "--set", "max_steps_per_epoch=1",
         "--set", "seed=4", "--set", "lr=0.02", "--set", "batch_size=2", "--lr", "0.03", "--epochs", "1")
    saved = json.loads((run / "config.json").read_text())
    assert (saved["lr"], saved["seed"], saved["log_every"], saved["epochs"], saved["batch_size"]) == (0.03, 4, 2, 1, 2)
    assert saved["topk"] == 16  # the tiny preset's, untouched by every other layer
