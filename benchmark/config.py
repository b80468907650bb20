"""Training configuration: one typed record, presets from ``data_manifests/train_presets.json``.

Precedence, lowest first: the dataclass defaults < the preset < ``--config FILE`` (JSON) <
``--set key=value`` < explicit flags (``--epochs`` ...), through the loader every command shares
(``brokenchairs.config``): an unknown key or a value of the wrong type is one line naming the key. The resolved config is saved as
``RUN/config.json`` and inside every checkpoint.

The fields that are also model constructor arguments (``d``, ``heads``, ``topk``, ``tau`` ...)
reach the model when its registry spec accepts them (``model_kwargs``); the switches that define
a Table 2 row (views, VLFA, 3DPE, top-k or dense) belong to the model name, not to the config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from brokenchairs.config import Layer, read_file, resolve
from brokenchairs.data_manifests import load_json
from brokenchairs.data_manifests.reference_controls import KIN
from brokenchairs.errors import InputError, check_bool, check_int, check_number
from brokenchairs.models.registry import MODEL_NAMES, READOUTS, spec


@dataclass
class TrainConfig:
    model: str = "cmt"
    preset: str = "paper"
    # optimisation (paper 5: Adam, lr 2e-5, batch 8 per GPU, 20 epochs; released: betas (0, 0.999),
    # StepLR x0.1 every 20 epochs)
    lr: float = 2e-5
    adam_beta1: float = 0.0
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    lr_drop: int = 20  # epochs between x lr_gamma steps; 0 = constant
    lr_gamma: float = 0.1
    batch_size: int = 8
    epochs: int = 20
    grad_clip: float = 0.0
    # model (passed on when the model's spec accepts the key)
    d: int = 128
    heads: int = 8
    head_dim: int = 64
    blocks: int = 3
    ff_mult: int = 4
    topk: int = 100
    encoder_head: str = "panoptic"
    box_head: bool = True
    embed: int = 128  # retrieval / lfd descriptor size
    margin: float = 0.5  # retrieval / lfd triplet margin
    box_layers: int = 4
    box_l1_weight: float = 5.0
    box_giou_weight: float = 2.0
    readout: str = "token"  # token+pool: the heads read [tok] + the query's foreground mean (a deviation; token = paper)
    cell_weight: float = 0.0  # > 0: per-cell anomaly head from the masks (a deviation; 0 = paper and release)
    momentum: float | None = 0.999
    tau: float = 0.1
    vlfa_weight: float = 0.5  # a of Eq. 15 (Table 3: 1 = query-view only, 0 = view-view only)
    vlfa_scale: float = 1.0  # x both VLFA terms of Eq. 15 (1 = paper and release; < 1 a deviation, issue 24)
    vlfa_points: int = 32
    vlfa_query_labels: str = "pseudo"  # paper: pseudo-labels (Eq. 13); "camera": from the query's depth and camera
    vlfa_losses: str = "both"  # Table 3: both (Eq. 15), query-view, view-view or none
    proj_hidden: int = 1024
    proj_dim: int = 256
    backbone_weights: str = ""
    init_from: str = ""  # a brokenchairs checkpoint whose matching weights start the run (a deviation; "" = none)
    # data
    views_train: int = 10
    views_test: int = 20
    augment: bool = True
    split: str = "train"
    val_split: str = "val"
    workers: int = 4
    cache_shapes: int = 32
    group_shapes: int = 8
    shapes_per_batch: int = 0  # >0: each batch holds queries of at most this many shapes, sharing views
    twins: bool = False  # train on the normal twins too, each beside its anomalous query (generate --twins; a deviation)
    pair_weight: float = 0.0  # > 0 (needs twins): + W x softplus(s_twin - s_anomalous) per pair (benchmark.pair_loss)
    wrong_reference: float = 0.0  # > 0: that share of normal queries gets a kin's views, labelled anomalous (a deviation)
    wrong_reference_kin: str = "family"  # whose views: a shape of its procedural family, or any shape (benchmark.wrong_reference)
    wrong_reference_from: int = 0  # the first epoch (0-based) with wrong references: 9 = the last three of 12
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA and on CPUs with AMX, else fp32 (benchmark.device.compute_dtype)
    log_every: int = 10
    max_steps_per_epoch: int = 0  # 0 = whole epoch
    checkpoint_every: int = 500  # optimiser steps between exact-resume checkpoints (last.pt) inside an epoch; 0 = epoch ends only

    def validate(self, source: Path | None = None) -> None:
        if self.model not in MODEL_NAMES:
            raise InputError(source, f"unknown model {self.model!r}; known: {', '.join(MODEL_NAMES)}")
        for name in ("batch_size", "epochs", "views_train", "views_test", "d", "heads", "head_dim", "blocks", "ff_mult",
                     "topk", "box_layers", "vlfa_points", "proj_hidden", "proj_dim", "embed", "log_every", "group_shapes"):
            check_int(name, getattr(self, name), 1, source=source)
        for name in ("workers", "cache_shapes", "seed", "max_steps_per_epoch", "checkpoint_every", "lr_drop", "wrong_reference_from",
                     "shapes_per_batch"):
            check_int(name, getattr(self, name), 0, source=source)
        check_number("lr", self.lr, 0, None, source, exclusive=True)
        check_number("tau", self.tau, 0, None, source, exclusive=True)
        for name in ("weight_decay", "grad_clip", "box_l1_weight", "box_giou_weight", "margin", "cell_weight",
                     "pair_weight", "vlfa_scale"):
            check_number(name, getattr(self, name), 0, None, source)
        for name in ("adam_beta1", "adam_beta2", "lr_gamma", "vlfa_weight", "wrong_reference"):
            check_number(name, getattr(self, name), 0, 1, source)
        if self.momentum is not None:
            check_number("momentum", self.momentum, 0, 1, source)
        for name in ("box_head", "augment", "amp", "twins"):
            check_bool(name, getattr(self, name), source)
        if self.pair_weight > 0 and not self.twins:
            raise InputError(source, "pair_weight > 0 needs twins=true (the pairs are the normal twins)")
        for name, allowed in (("vlfa_losses", ("both", "query-view", "view-view", "none")),
                              ("vlfa_query_labels", ("pseudo", "camera")), ("encoder_head", ("panoptic", "fpn")),
                              ("wrong_reference_kin", KIN),
                              ("readout", READOUTS)):
            if getattr(self, name) not in allowed:
                raise InputError(source, f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    def model_kwargs(self, resolution: int) -> dict:
        """Constructor overrides for ``models.build_model``: the fields this model's spec accepts."""
        accepts = spec(self.model).accepts
        kw = {k: getattr(self, k) for k in accepts if k in FIELDS}
        if "backbone_weights" in kw:
            kw["backbone_weights"] = kw["backbone_weights"] or None
        if "image_size" in accepts:
            kw["image_size"] = resolution
        return kw

    def to_json(self) -> dict:
        return asdict(self)


FIELDS = {f.name: f for f in fields(TrainConfig)}


def load_presets() -> dict[str, dict]:
    return load_json("train_presets.json")


def resolve_config(model: str, preset: str = "paper", config_file: Path | None = None,
                   overrides: dict | Layer | None = None, flags: dict | list[Layer] | None = None) -> TrainConfig:
    """preset < config_file < overrides (``--set``) < flags (explicit options; None = not given),
    through the one loader (``brokenchairs.config``)."""
    presets = load_presets()
    if preset not in presets:
        raise InputError(None, f"unknown preset {preset!r}; known: {', '.join(presets)}")
    if model not in MODEL_NAMES:
        raise InputError(None, f"unknown model {model!r}; known: {', '.join(MODEL_NAMES)}")
    if isinstance(overrides, dict) or overrides is None:
        overrides = Layer("--set", overrides or {})
    if isinstance(flags, dict) or flags is None:
        flags = [Layer(f"--{k.replace('_', '-')}", {k: v}) for k, v in (flags or {}).items() if v is not None]
    layers = [Layer(f"preset {preset}", presets[preset]), read_file(config_file, "training config"), overrides, *flags]
    return resolve(TrainConfig, [x for x in layers if x is not None], fixed={"model": model, "preset": preset},
                   what="training option")
