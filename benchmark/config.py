"""Training configuration: one typed record, presets from ``data_manifests/train_presets.json``.

Precedence: preset < ``--config FILE`` (JSON) < ``--set key=value`` / explicit flags. The
resolved config is saved as ``RUN/config.json`` and inside every checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from brokenchairs.data_manifests import load_json
from brokenchairs.errors import InputError, check_bool, check_int, check_number
from brokenchairs.models import CONFIGS


@dataclass
class TrainConfig:
    model: str = "cmt"
    preset: str = "paper"
    lr: float = 2e-5
    weight_decay: float = 0.0
    batch_size: int = 8
    epochs: int = 20
    topk: int = 100
    blocks: int = 3
    heads: int = 8
    d: int = 128
    box_head: bool = True
    momentum: float | None = None
    backbone_weights: str = ""
    views_train: int = 10
    views_test: int = 20
    augment: bool = True
    split: str = "train"
    val_split: str = "val"
    workers: int = 4
    cache_shapes: int = 32
    group_shapes: int = 8
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA; CPU runs in fp32
    grad_clip: float = 0.0
    log_every: int = 10
    max_steps_per_epoch: int = 0  # 0 = whole epoch
    checkpoint_every: int = 500  # optimiser steps between exact-resume checkpoints (last.pt) inside an epoch; 0 = epoch ends only

    def validate(self, source: Path | None = None) -> None:
        if self.model not in CONFIGS:
            raise InputError(source, f"unknown model {self.model!r}; known: {', '.join(CONFIGS)}")
        for name in ("batch_size", "epochs", "views_train", "views_test", "d", "heads", "blocks", "topk", "log_every",
                     "group_shapes"):
            check_int(name, getattr(self, name), 1, source=source)
        for name in ("workers", "cache_shapes", "seed", "max_steps_per_epoch", "checkpoint_every"):
            check_int(name, getattr(self, name), 0, source=source)
        if self.d % self.heads:
            raise InputError(source, f"d = {self.d} is not divisible by heads = {self.heads}")
        check_number("lr", self.lr, 0, None, source, exclusive=True)
        for name in ("weight_decay", "grad_clip"):
            check_number(name, getattr(self, name), 0, None, source)
        if self.momentum is not None:
            check_number("momentum", self.momentum, 0, 1, source)
        for name in ("box_head", "augment", "amp"):
            check_bool(name, getattr(self, name), source)

    def model_kwargs(self, resolution: int) -> dict:
        """Overrides for ``models.build_model`` that apply to this model."""
        if self.model == "vit":
            return {"image_size": resolution}
        if self.model == "retrieval":
            return {"d": self.d, "backbone_weights": self.backbone_weights or None}
        kw = {"d": self.d, "heads": self.heads, "blocks": self.blocks, "box_head": self.box_head,
              "momentum": self.momentum, "backbone_weights": self.backbone_weights or None}
        if CONFIGS[self.model].get("topk") is not None:
            kw["topk"] = self.topk
        return kw

    def to_json(self) -> dict:
        return asdict(self)


FIELDS = {f.name: f for f in fields(TrainConfig)}


def load_presets() -> dict[str, dict]:
    return load_json("train_presets.json")


def _coerce(name: str, value, source) -> object:
    if name not in FIELDS:
        raise InputError(source, f"unknown training option {name!r}; known: {', '.join(FIELDS)}")
    default = getattr(TrainConfig(), name)
    if not isinstance(value, str):
        return value
    if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise InputError(source, f"{name} expects true/false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float) or name == "momentum":
            return None if value.lower() == "none" else float(value)
    except ValueError as exc:
        raise InputError(source, f"{name} expects a number, got {value!r}") from exc
    return value


def resolve_config(model: str, preset: str = "paper", config_file: Path | None = None,
                   overrides: dict | None = None) -> TrainConfig:
    presets = load_presets()
    if preset not in presets:
        raise InputError(None, f"unknown preset {preset!r}; known: {', '.join(presets)}")
    values: dict = {k: v for k, v in presets[preset].items() if not k.startswith("_")}
    if config_file is not None:
        try:
            data = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(config_file, f"not a readable JSON config ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError(config_file, "a training config is a JSON object")
        values.update({k: _coerce(k, v, config_file) for k, v in data.items() if not k.startswith("_")})
    values.update({k: _coerce(k, v, None) for k, v in (overrides or {}).items() if v is not None})
    values.update(model=model, preset=preset)
    cfg = TrainConfig(**values)
    cfg.validate(config_file)
    return cfg


def parse_sets(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(None, f"--set expects key=value, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out
