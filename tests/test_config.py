"""One config loader (brokenchairs/config.py) for generate, render-views and train: every key set
every way (--config file, --set, an explicit flag where one exists) reads back from the saved
config, with one precedence (preset < file < --set < flag) and one-line errors naming the key.

generate's keys are read back from dataset.json as ``plan --write`` records it (no Blender);
render-views' from a real render and train's from RUN/config.json are in tests/render.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from brokenchairs.benchmark.config import TrainConfig, load_presets, resolve_config
from brokenchairs.cli import main
from brokenchairs.cli_data import GENERATE_FLAGS, VIEWS_FLAGS
from brokenchairs.config import Layer, coerce, parse_sets, resolve
from brokenchairs.errors import InputError
from brokenchairs.generation.pipeline.generate import GenerateConfig
from brokenchairs.generation.units.tasks import ViewsConfig

# a valid value other than the default for every GenerateConfig key, as JSON, as --set text and as flags
GENERATE_VALUES = {
    "anomalies": (["broken", "normal"], "broken,normal", ["--anomaly", "broken", "--anomaly", "normal"]),
    "views_per_variant": (3, "3", ["--views-per-variant", "3"]),
    "resolution": (64, "64", ["--resolution", "64"]),
    "samples": (2, "2", ["--samples", "2"]),
    "denoise": (False, "false", None),
    "fov_deg": (30.0, "30", None),
    "seed": (4, "4", ["--seed", "4"]),
    "shard_size": (7, "7", ["--shard-size", "7"]),
    "twins": (True, "true", ["--twins"]),
    "split_ratios": ([0.5, 0.25, 0.25], "0.5,0.25,0.25", ["--split-ratios", "0.5,0.25,0.25"]),
    "materials": ("{lib}", "{lib}", ["--materials", "{lib}"]),
    "balance": ("every-shape", "every-shape", ["--balance", "every-shape"]),
    "min_anomaly_pixels": (9, "9", ["--min-anomaly-pixels", "9"]),
}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> str:
    from brokenchairs.generation.render.materials.library import synth_library

    lib = tmp_path_factory.mktemp("lib")
    list(synth_library(2, 0, lib, size=8))
    return str(lib)


def _fill(value, lib):
    if isinstance(value, str):
        return value.format(lib=lib)
    if isinstance(value, list):
        return [_fill(v, lib) for v in value]
    return value


def _planned_config(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "ds"
    res = CliRunner().invoke(main, ["plan", "--write", "--num-shapes", "2", "--out", str(out), *args])
    assert res.exit_code == 0, res.output
    return json.loads((out / "dataset.json").read_text())["queries"]["config"]


def test_every_generate_key_has_a_test_value():
    assert set(GENERATE_VALUES) == {f.name for f in fields(GenerateConfig)}
    assert set(GENERATE_FLAGS.values()) == {k for k, (_, _, flag) in GENERATE_VALUES.items() if flag}


@pytest.mark.parametrize("way", ["file", "set", "flag"])
def test_every_generate_key_every_way_reads_back_from_dataset_json(way, tmp_path, library):
    if way == "file":
        cfg = tmp_path / "ds.json"
        cfg.write_text(json.dumps({k: _fill(v[0], library) for k, v in GENERATE_VALUES.items()}))
        args, keys = ["--config", str(cfg)], list(GENERATE_VALUES)
    elif way == "set":
        args = [a for k, v in GENERATE_VALUES.items() for a in ("--set", f"{k}={_fill(v[1], library)}")]
        keys = list(GENERATE_VALUES)
    else:
        keys = [k for k, v in GENERATE_VALUES.items() if v[2]]
        args = [a for k in keys for a in _fill(GENERATE_VALUES[k][2], library)]
    saved = _planned_config(tmp_path, *args)
    for key in keys:
        want = _fill(GENERATE_VALUES[key][0], library)
        want = str(Path(want).resolve()) if key == "materials" else want
        assert saved[key] == want, (way, key, saved[key])
    untouched = {f.name: getattr(GenerateConfig(), f.name) for f in fields(GenerateConfig)} | {"materials": "materials"}
    for key in set(GENERATE_VALUES) - set(keys):  # keys without a flag keep their default
        assert saved[key] == (list(untouched[key]) if isinstance(untouched[key], tuple) else untouched[key])


def test_generate_precedence_file_then_set_then_flag(tmp_path):
    cfg = tmp_path / "ds.json"
    cfg.write_text(json.dumps({"resolution": 48, "seed": 1, "shard_size": 5, "fov_deg": 20}))
    saved = _planned_config(tmp_path, "--config", str(cfg), "--set", "seed=2", "--set", "shard_size=6",
                            "--shard-size", "9")
    assert (saved["resolution"], saved["seed"], saved["shard_size"], saved["fov_deg"]) == (48, 2, 9, 20.0)


@pytest.mark.parametrize("args, message", [
    (["--set", "resolutin=64"], "unknown dataset option 'resolutin'"),
    (["--set", "twins=maybe"], "twins expects true or false, got 'maybe'"),
    (["--set", "split_ratios=0.5,0.5"], "split_ratios expects 3 values"),
    (["--set", "samples=0"], "--samples must be in 1..65536, got 0"),
    (["--set", "resolution"], "--set expects key=value"),
])
def test_generate_bad_keys_are_one_line_naming_the_key(args, message, tmp_path):
    out = tmp_path / "ds"
    res = CliRunner().invoke(main, ["plan", "--write", "--num-shapes", "1", "--out", str(out), *args])
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()


def _click_defaults(command: click.Command, names: dict[str, str]) -> dict:
    return {names[p.name]: p.default for p in command.params
            if p.name in names and isinstance(p.default, (int, float, str, tuple))}  # not None or click's UNSET


def test_flag_defaults_are_the_config_defaults():
    """The flags show a default in --help; it must be the dataclass's, the one that applies."""
    from brokenchairs.cli_data import generate_cmd, render_views_cmd

    for command, cls, names in ((generate_cmd, GenerateConfig, GENERATE_FLAGS), (render_views_cmd, ViewsConfig, VIEWS_FLAGS)):
        for key, default in _click_defaults(command, names).items():
            got = getattr(resolve(cls, [Layer("flag", {key: default})]), key)  # "all" and "a,b,c" as the loader reads them
            assert got == getattr(cls(), key), (command.name, key, default)


# --- train ---------------------------------------------------------------------------------------
TRAIN_VALUES = {  # a valid value other than every preset's and the default
    "lr": 1.5e-4, "adam_beta1": 0.5, "adam_beta2": 0.99, "weight_decay": 0.01, "lr_drop": 7, "lr_gamma": 0.5,
    "batch_size": 3, "epochs": 5, "grad_clip": 1.0, "d": 96, "heads": 3, "head_dim": 24, "blocks": 2, "ff_mult": 3,
    "topk": 12, "encoder_head": "fpn", "box_head": False, "embed": 64, "margin": 0.25, "box_layers": 2,
    "box_l1_weight": 4.0, "box_giou_weight": 1.0, "cell_weight": 0.5, "readout": "token+pool", "momentum": None, "tau": 0.2, "vlfa_weight": 0.75,
    "vlfa_scale": 0.25, "vlfa_points": 16, "vlfa_query_labels": "camera", "vlfa_losses": "view-view", "proj_hidden": 256,
    "proj_dim": 64, "backbone_weights": "/weights/r18.pth", "init_from": "/runs/q/epoch-001.pt", "views_train": 3, "views_test": 7, "augment": False,
    "split": "train,val", "val_split": "", "workers": 1, "cache_shapes": 5, "group_shapes": 3,
    "shapes_per_batch": 1, "twins": True, "pair_weight": 0.5, "wrong_reference": 0.25,
    "wrong_reference_kin": "any", "wrong_reference_from": 4, "seed": 9, "amp": False, "log_every": 3, "max_steps_per_epoch": 11,
    "checkpoint_every": 13,
}
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "workers", "checkpoint_every")


def test_every_train_key_has_a_test_value_unlike_the_preset_and_the_default():
    assert set(TRAIN_VALUES) == {f.name for f in fields(TrainConfig)} - {"model", "preset"}
    paper, default = load_presets()["paper"], TrainConfig()
    assert not {k for k, v in TRAIN_VALUES.items() if paper.get(k, getattr(default, k)) == v}


@pytest.mark.parametrize("way", ["file", "set", "flag"])
def test_every_train_key_every_way_reads_back_from_the_saved_config(way, tmp_path):
    if way == "file":
        f = tmp_path / "train.json"
        f.write_text(json.dumps(TRAIN_VALUES))
        cfg, keys = resolve_config("cmt", "paper", f), list(TRAIN_VALUES)
    elif way == "set":
        sets = tuple(f"{k}={'none' if v is None else str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in TRAIN_VALUES.items())
        cfg, keys = resolve_config("cmt", "paper", None, parse_sets(sets)), list(TRAIN_VALUES)
    else:
        cfg, keys = resolve_config("cmt", "paper", None, None, {k: TRAIN_VALUES[k] for k in TRAIN_FLAGS}), TRAIN_FLAGS
    saved = json.loads(json.dumps(cfg.to_json()))  # what train writes to RUN/config.json
    for key in keys:
        assert saved[key] == TRAIN_VALUES[key], (way, key)


def test_coerce_by_field_type():
    assert coerce("x", "1e-4", float, "--set") == 1e-4
    assert coerce("x", "a, b", tuple[str, ...], "--set") == ("a", "b")
    assert coerce("x", "none", float | None, "--set") is None
    with pytest.raises(InputError, match="x expects a whole number, got '2.5'"):
        coerce("x", "2.5", int, "--set")
    with pytest.raises(InputError, match="x cannot be none"):
        coerce("x", None, float, "f.json")
    with pytest.raises(InputError, match="x expects a number, got True"):
        coerce("x", True, float, "f.json")
