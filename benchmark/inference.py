"""Run a model over a split and collect per-sample predictions (shared by eval and validation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.ops import box_convert
from tqdm import tqdm

from brokenchairs.dataset.index import DatasetIndex

from brokenchairs.benchmark.data import ShardDataset, prepare_batch
from brokenchairs.benchmark.device import autocast
from brokenchairs.benchmark.viewpoint import predict_view
from brokenchairs.models import spec
from brokenchairs.models.cmt import cell_targets
from brokenchairs.models.encoder import STRIDE


@dataclass
class Predictions:
    sample_id: list[str]
    shape_id: list[str]
    index: np.ndarray  # row in the DatasetIndex
    label: np.ndarray
    code: np.ndarray
    score: np.ndarray  # sigmoid of the logit
    true_box: np.ndarray  # (n,4) xyxy px, NaN for no box
    pred_box: np.ndarray | None  # (n,4) xyxy px when the model has a box head
    view_pred: np.ndarray | None  # absolute reference-view index predicted from correspondences
    view_true: np.ndarray | None  # absolute index of the truly closest reference view
    cell_max: np.ndarray | None = None  # with a cell head: the highest cell probability of each query
    cell_prob: np.ndarray | None = None  # the anomalous queries' cell probabilities (object or anomaly cells)
    cell_true: np.ndarray | None = None  # and whether each of those cells touches the anomaly


def make_eval_dataset(model_name: str, index: DatasetIndex, views: int, cache_shapes: int = 32,
                      reference_of: dict[str, str] | None = None) -> ShardDataset:
    return ShardDataset(index, views=views, train=False, augment=False, with_views=spec(model_name).views,
                        with_depth=False, cache_shapes=cache_shapes, reference_of=reference_of)


@torch.no_grad()
def run_inference(model: torch.nn.Module, model_name: str, index: DatasetIndex, views: int = 20,
                  device: str | torch.device = "cpu", batch_size: int = 8, workers: int = 0, progress: bool = True,
                  amp: bool = True, reference_of: dict[str, str] | None = None) -> Predictions:
    """Queries in index order (a shape's queries are adjacent, so a batch shares its views)."""
    device = torch.device(device)
    ds = make_eval_dataset(model_name, index, views, reference_of=reference_of)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda")
    was_training = model.training
    model.eval().to(device)
    cols: dict[str, list] = {k: [] for k in ("sample_id", "shape_id", "index", "label", "code", "score", "true_box",
                                             "pred_box", "view_pred", "view_true", "cell_max", "cell_prob",
                                             "cell_true")}
    for raw in tqdm(loader, desc="eval", unit="batch", disable=None if progress else True, leave=False):
        batch = prepare_batch(raw, device)
        with autocast(device, amp):
            out = model(batch)
        H, W = batch["query"].shape[-2:]
        cols["sample_id"] += list(raw["sample_id"])
        cols["shape_id"] += list(raw["shape_id"])
        for key, src in (("index", "index"), ("label", "label"), ("code", "anomaly_code"), ("true_box", "bbox_xyxy")):
            cols[key].append(raw[src].numpy())
        cols["score"].append(torch.sigmoid(out["logits"].float()).cpu().numpy())
        if "boxes" in out:
            scale = torch.tensor([W, H, W, H], device=device, dtype=torch.float32)
            cols["pred_box"].append((box_convert(out["boxes"].float(), "cxcywh", "xyxy") * scale).cpu().numpy())
        if "cell_logits" in out:
            prob, target = torch.sigmoid(out["cell_logits"].float()), cell_targets(batch["mask"])
            keep = out["q_valid"].flatten(1) | (target > 0)
            cols["cell_max"].append(prob.masked_fill(~keep, 0).amax(1).cpu().numpy())
            anomalous = keep & (batch["label"] == 1)[:, None]
            cols["cell_prob"].append(prob[anomalous].cpu().numpy())
            cols["cell_true"].append(target[anomalous].cpu().numpy())
        if "zq" in out:
            pick, _ = predict_view(out["zq"].float(), out["q_valid"], out["zv"].float(), out["v_valid"], W // STRIDE)
            ids = raw["view_ids"]
            cols["view_pred"].append(ids.gather(1, pick.cpu()[:, None])[:, 0].numpy())
            cols["view_true"].append(ids.gather(1, raw["closest_view"][:, None])[:, 0].numpy())
    model.train(was_training)
    cat = lambda k: np.concatenate(cols[k]) if cols[k] else None  # noqa: E731
    return Predictions(cols["sample_id"], cols["shape_id"], cat("index"), cat("label"), cat("code"), cat("score"),
                       cat("true_box"), cat("pred_box"), cat("view_pred"), cat("view_true"), cat("cell_max"),
                       cat("cell_prob"), cat("cell_true"))
