"""``brokenchairs train``: one process on CPU or one GPU, or DDP under ``torchrun``.

A run folder holds ``config.json`` (the resolved config), ``metrics.csv`` (one row per logged
step and per validation), TensorBoard event files under ``tb/``, and checkpoints ``last.pt``
(every ``checkpoint_every`` steps, every epoch end and on SIGINT/SIGTERM; each written to a
temporary of its own, flushed and renamed, so a ``kill -9`` at any moment leaves the previous one
whole) plus ``epoch-NNN.pt``. ``resume=True`` restores the model, optimiser, RNG states and the
position (in batches) inside the epoch, so the loss trajectory continues exactly as an
uninterrupted run (loader randomness is seeded per sample, see ``data.py``); rows and TensorBoard
events that a killed run logged after its last checkpoint are dropped and logged again.
Under DDP only rank 0 writes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from brokenchairs.benchmark.checkpoint import init_weights, read_checkpoint, save_checkpoint, set_rng_state
from brokenchairs.benchmark.config import TrainConfig
from brokenchairs.dataset.index import DatasetIndex
from brokenchairs.benchmark.data import EpochSampler, ShardDataset, prepare_batch
from brokenchairs.benchmark.pair_loss import pair_loss
from brokenchairs.benchmark.wrong_reference import kin_of, shape_groups
from brokenchairs.benchmark.device import autocast, compute_dtype, float32_outputs, resolve_device
from brokenchairs.benchmark.inference import run_inference
from brokenchairs.benchmark.metrics import compute_metrics
from brokenchairs.errors import InputError
from brokenchairs.models import build_model, spec
from brokenchairs.shared_folder import sweep, write_atomic

CSV_FIELDS = ["kind", "epoch", "step", "loss", "bce", "va_qv", "va_vv", "box_l1", "box_giou", "cell", "pair", "triplet", "push",
              "samples_per_s", "lr", "auc", "accuracy"]


@dataclass
class TrainResult:
    run: Path
    steps: int = 0
    epochs_done: int = 0
    interrupted: bool = False
    losses: list = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    rank: int = 0  # under DDP only rank 0 reports


class _Stop:
    """Turns SIGINT/SIGTERM into a flag checked between steps (a checkpoint is saved, then we exit)."""

    def __init__(self):
        self.flag = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.flag = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _dist_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _device(requested: str, local_rank: int) -> torch.device:
    requested = resolve_device(requested)
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(None, "--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda", local_rank if requested == "cuda" else int(requested.split(":")[1]))
    return torch.device("cpu")


class CsvLog:
    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled and not path.exists():
            with path.open("w", newline="") as f:
                csv.DictWriter(f, CSV_FIELDS).writeheader()

    def write(self, row: dict) -> None:
        if self.enabled:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore").writerow(row)

    def drop_after(self, step: int) -> None:
        """Forget rows of steps after ``step`` (the checkpoint a resumed run starts from)."""
        if not (self.enabled and self.path.exists()):
            return
        with self.path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if (r.get("step") or "").isdigit() and int(r["step"]) <= step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, buf.getvalue())


def train(cfg: TrainConfig, data: Path, run: Path, resume: bool = False, device: str = "auto", progress: bool = True,
          stop_after_steps: int | None = None, epochs: int | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``data`` into ``run``. ``stop_after_steps`` behaves like an interrupt
    after that many optimiser steps of this call (used to test exact resumption). On ``resume``
    the run's saved config rules; ``epochs`` (if given) replaces its epoch count, so a finished run
    is extended to ``epochs`` exactly as if it had been asked for them from the start (the learning
    rate of an epoch depends on its index only)."""
    rank, world, local_rank = _dist_env()
    dev = _device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    main_proc = rank == 0
    run = Path(run)
    ckpt_path = run / "last.pt"
    if main_proc and (run / "config.json").exists() and not resume:
        raise InputError(run, "run folder already holds a run: pass --resume to continue it, or use a new --out")
    state = None
    if resume:
        if not ckpt_path.is_file():
            raise InputError(ckpt_path, "nothing to resume (no checkpoint in the run folder)")
        state = read_checkpoint(ckpt_path, cfg.model)
        cfg = TrainConfig(**{**state["config"], **({"epochs": epochs} if epochs is not None else {})})

    model_spec = spec(cfg.model)
    index = DatasetIndex.open(data, cfg.split, need_views=model_spec.views, twins=cfg.twins)
    pairs = index.twin_pairs() if cfg.twins else {}
    if cfg.twins and not pairs:
        raise InputError(Path(data) / "dataset.json", f"twins=true, but split {cfg.split!r} holds no normal twins "
                                                      "(generate with --twins)")
    res = index.resolution or 256
    ds = ShardDataset(index, views=cfg.views_train, train=True, augment=cfg.augment, with_views=model_spec.views,
                      with_depth=model_spec.vlfa, cache_shapes=cfg.cache_shapes,
                      with_query_xyz=model_spec.query_xyz or (model_spec.vlfa and cfg.vlfa_query_labels == "camera"),
                      pairs=pairs)
    kin = {}
    if cfg.wrong_reference > 0:
        if not model_spec.views:
            raise InputError(None, f"wrong_reference > 0: model {cfg.model} reads no reference views")
        kin = kin_of(shape_groups(Path(data), index.shapes(), cfg.wrong_reference_kin))
    sampler = EpochSampler(index, cfg.seed, cfg.batch_size, shuffle=True, rank=rank, world=world,
                           group_shapes=cfg.group_shapes, shapes_per_batch=cfg.shapes_per_batch, pairs=pairs,
                           wrong_reference=cfg.wrong_reference, kin=kin, wrong_from=cfg.wrong_reference_from)
    if len(sampler) < 1:  # every batch is full (drop_last): fewer samples would train nothing
        raise InputError(Path(data) / "dataset.json", f"split {cfg.split!r} holds {len(index)} queries, fewer than "
                                                      f"batch_size {cfg.batch_size} per process: lower --batch-size")

    torch.manual_seed(cfg.seed)
    model_kwargs = cfg.model_kwargs(res)
    model = build_model(cfg.model, **model_kwargs)
    if cfg.init_from and state is None:
        init_weights(model, Path(cfg.init_from))
    model = model.to(dev)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                           betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    epoch, pos, step = 0, 0, 0
    if state is not None:
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        epoch, pos, step = state["epoch"], state["pos"], state["step"]
        set_rng_state(state["rng"])
        if state.get("generator") is not None:
            gen.set_state(state["generator"])
    net = DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model

    val_index = _val_index(cfg, data) if main_proc else None  # read once, scored after every epoch
    if main_proc:  # every input checked: only now the run folder is made
        run.mkdir(parents=True, exist_ok=True)
        sweep(run)  # temporaries of checkpoints whose writer was killed
        dtype = compute_dtype(dev, cfg.amp)
        before = _saved_dtype(run / "config.json") if state is not None else None
        if before is not None and not before.endswith(dtype):  # e.g. a float32 run resumed on a CPU with AMX
            print(f"{run}: trained in {before} until epoch {epoch}, continues in {dtype} (--set amp decides)",
                  file=sys.stderr)
            dtype = f"{before} to epoch {epoch}, then {dtype}"
        elif before is not None:
            dtype = before
        (run / "config.json").write_text(json.dumps(cfg.to_json() | {"data": str(Path(data).resolve()),
                                                                     "resolution": res, "compute_dtype": dtype},
                                                    indent=1))
    log = CsvLog(run / "metrics.csv", main_proc)
    if state is not None:  # rows logged after the checkpoint by a run killed later are logged again
        log.drop_after(step)
    tb = _tensorboard(run, main_proc, purge_step=step + 1 if state is not None else None)
    result = TrainResult(run=run, steps=step, rank=rank)
    t_start = time.perf_counter()

    def checkpoint(path: Path, e: int, p: int) -> None:
        if main_proc:
            save_checkpoint(path, model=model, model_name=cfg.model, model_kwargs=model_kwargs, config=cfg.to_json(),
                            optimizer=opt, epoch=e, pos=p, step=step, generator=gen, resolution=res)

    steps_this_call = 0
    # one loader for the whole run: its worker processes, and the reference views each one has cached, outlive the
    # epoch (the sampler is iterated in this process, so set_epoch below still takes effect at each new iterator)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=dev.type == "cuda",
                        persistent_workers=cfg.workers > 0)
    with _Stop() as stop:
        while epoch < cfg.epochs:
            sampler.set_epoch(epoch, start=pos)
            for group in opt.param_groups:  # StepLR's schedule, exact on resume
                group["lr"] = epoch_lr(cfg, epoch)
            limit = cfg.max_steps_per_epoch or None
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=None if (progress and main_proc) else True,
                       initial=pos, total=pos + len(sampler))
            model.train()
            t_log, n_log = time.perf_counter(), 0
            batches = bar if limit is None or pos < limit else ()  # resumed at the limit: epoch done
            for raw in batches:
                batch = prepare_batch(raw, dev)
                with autocast(dev, cfg.amp):
                    out = float32_outputs(net(batch))
                    loss, parts = model.loss(batch, out, generator=gen)
                    if cfg.pair_weight > 0:
                        parts["pair"] = pair_loss(out["logits"], batch["pair"], batch["label"])
                        loss = loss + cfg.pair_weight * parts["pair"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                if hasattr(model, "momentum_update"):
                    model.momentum_update()
                step += 1
                steps_this_call += 1
                pos += 1
                n_log += len(raw["label"]) * world
                value = float(loss.detach())
                result.losses.append(value)
                result.samples += len(raw["label"]) * world
                if step % cfg.log_every == 0 or step == 1:
                    rate = n_log / max(time.perf_counter() - t_log, 1e-9)
                    row = {"kind": "train", "epoch": epoch, "step": step, "loss": value, "samples_per_s": round(rate, 3),
                           "lr": opt.param_groups[0]["lr"]} | {k: float(v.detach()) for k, v in parts.items()}
                    log.write(row)
                    if tb is not None:
                        for k, v in row.items():
                            if k not in ("kind", "epoch", "step"):
                                tb.add_scalar(f"train/{k}", v, step)
                    t_log, n_log = time.perf_counter(), 0
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                hit_limit = limit is not None and pos >= limit
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:  # survives kill -9 (OOM, node loss)
                    checkpoint(ckpt_path, epoch, pos)
                if stop.flag or (stop_after_steps is not None and steps_this_call >= stop_after_steps):
                    checkpoint(ckpt_path, epoch, pos)
                    result.interrupted = True
                    break
                if hit_limit:
                    break
            bar.close()
            if result.interrupted:
                break
            epoch, pos = epoch + 1, 0
            checkpoint(ckpt_path, epoch, 0)
            checkpoint(run / f"epoch-{epoch:03d}.pt", epoch, 0)
            result.epochs_done += 1
            if val_index is not None:
                _validate(model, cfg, val_index, dev, log, tb, epoch, step, progress)
    if tb is not None:
        tb.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    result.steps, result.seconds = step, time.perf_counter() - t_start
    return result


def _saved_dtype(path: Path) -> str | None:
    """The compute_dtype a run's config.json records (None for runs written before it was recorded)."""
    return json.loads(path.read_text()).get("compute_dtype") if path.is_file() else None


def epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of an epoch: x lr_gamma every lr_drop epochs (the released StepLR)."""
    return cfg.lr * (cfg.lr_gamma ** (epoch // cfg.lr_drop) if cfg.lr_drop else 1.0)


def _tensorboard(run: Path, enabled: bool, purge_step: int | None = None):
    """``purge_step``: on resume, events from that step on (logged by a run killed after its
    checkpoint) are hidden, as TensorBoard does for a restarted writer."""
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run / "tb"), purge_step=purge_step)


def _val_index(cfg: TrainConfig, data: Path) -> DatasetIndex | None:
    """The validation split, or None when val_split is "" or the split is empty (no validation)."""
    if not cfg.val_split:
        return None
    index = DatasetIndex.open(data, cfg.val_split, need_views=spec(cfg.model).views, allow_empty=True)
    return index if len(index) else None


def _validate(model, cfg: TrainConfig, index: DatasetIndex, dev, log: CsvLog, tb, epoch: int, step: int,
              progress: bool) -> None:
    """AUC/accuracy on the validation split after an epoch."""
    preds = run_inference(model, cfg.model, index, cfg.views_test, dev, cfg.batch_size, 0, progress, cfg.amp)
    m = compute_metrics(preds.label, preds.score, preds.code)
    log.write({"kind": "val", "epoch": epoch, "step": step, "auc": m["auc"], "accuracy": m["accuracy"]})
    if tb is not None:
        for k in ("auc", "accuracy"):
            if m[k] is not None:
                tb.add_scalar(f"val/{k}", m[k], step)
