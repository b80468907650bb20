"""Checkpoints: model + optimiser + position + every RNG state, so ``--resume`` continues exactly.

A checkpoint is written to a temporary name of its own, flushed to the disk and renamed (a killed
run, even one killed with SIGKILL or by a node failure, never leaves a torn file).
Loading names the file in one line when it is not a checkpoint or holds another model.
"""

from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brokenchairs.errors import InputError
from brokenchairs.models import build_model
from brokenchairs.shared_folder import write_atomic

FORMAT = "brokenchairs-checkpoint/2"  # /2: the position inside an epoch counts batches


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, *, model: nn.Module, model_name: str, model_kwargs: dict, config: dict,
                    optimizer: torch.optim.Optimizer | None = None, epoch: int = 0, pos: int = 0, step: int = 0,
                    generator: torch.Generator | None = None, resolution: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "model": model_name, "model_kwargs": model_kwargs, "config": config,
             "state_dict": model.state_dict(), "epoch": epoch, "pos": pos, "step": step, "resolution": resolution,
             "optimizer": optimizer.state_dict() if optimizer else None, "rng": rng_state(),
             "generator": generator.get_state() if generator is not None else None}
    try:  # a temporary of this write, flushed, renamed: a failed write leaves the previous checkpoint whole
        return write_atomic(path, lambda f: torch.save(state, f), sync=True)
    except (RuntimeError, OSError) as exc:  # torch reports a short write (a full disk, a size limit) as "unexpected pos"
        free = shutil.disk_usage(path.parent).free / 2**20
        raise InputError(path, f"could not write the checkpoint ({free:.0f} MiB free on its disk; an earlier "
                               f"checkpoint of that name is kept for --resume): {exc}") from exc


def read_checkpoint(path: Path, model_name: str | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(path, f"not a readable checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(path, f"not a brokenchairs checkpoint (expected format {FORMAT})")
    if model_name is not None and state["model"] != model_name:
        raise InputError(path, f"checkpoint holds model {state['model']!r}, not {model_name!r}")
    return state


def init_weights(model: nn.Module, path: Path) -> int:
    """Start a new run from another run's weights (``init_from``, e.g. CMT's encoder from a trained
    query-only ResNet18-FPN): every tensor whose name and shape match is copied, the rest keep their
    initialisation; a model with EMA key copies (CMT's VLFA) starts them equal to the loaded online
    weights. Returns how many tensors were copied; none is an error naming the file."""
    state = read_checkpoint(path)
    own = model.state_dict()
    take = {k: v for k, v in state["state_dict"].items() if k in own and own[k].shape == v.shape}
    if not take:
        raise InputError(path, f"no weights of model {state['model']!r} fit this model (no name and shape in common)")
    model.load_state_dict(take, strict=False)
    if hasattr(model, "momentum_update"):
        model.momentum_update(0.0)
    return len(take)


def load_model(path: Path, model_name: str | None = None) -> tuple[nn.Module, dict]:
    """Build the checkpoint's model with its own kwargs and load the weights; returns (model, state)."""
    state = read_checkpoint(path, model_name)
    kwargs = dict(state["model_kwargs"])
    kwargs.pop("backbone_weights", None)  # the trained weights supersede the initial backbone
    model = build_model(state["model"], **kwargs)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit model {state['model']!r} ({str(exc).splitlines()[0]})") from exc
    return model, state
