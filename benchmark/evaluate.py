"""``brokenchairs eval``: predictions.csv, metrics.json, roc.png and examples.png for one split."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from brokenchairs.benchmark.checkpoint import load_model
from brokenchairs.dataset.index import DatasetIndex
from brokenchairs.benchmark.data import ShardDataset
from brokenchairs.benchmark.device import compute_dtype
from brokenchairs.benchmark.inference import Predictions, run_inference
from brokenchairs.benchmark.metrics import compute_metrics
from brokenchairs.benchmark.wrong_reference import control_references
from brokenchairs.data_manifests.reference_controls import CONTROLS
from brokenchairs.data_manifests.anomaly_types import TYPE_NAMES
from brokenchairs.errors import InputError
from brokenchairs.generation.inspection.sheets import save_grid
from brokenchairs.models import spec
from brokenchairs.shared_folder import write_atomic


def evaluate(checkpoint: Path, data: Path, out: Path, model_name: str | None = None, split: str = "test",
             views: int = 20, device: str = "cpu", batch_size: int = 8, workers: int = 0, examples: int = 12,
             progress: bool = True, shuffle_references: bool = False, amp: bool = True,
             references: str = "own") -> dict:
    """Score a checkpoint on a split; with ``references`` "shuffled" (or ``shuffle_references``) every
    query is paired with another test shape's reference views (a model that uses the reference
    should lose AUC), with "near-miss" with a test shape of its own family's
    (``benchmark.wrong_reference``: a model that compares part by part should lose AUC there too).
    ``amp``: bf16 autocast where the device multiplies bf16 natively (``benchmark.device.compute_dtype``)."""
    if shuffle_references and references not in ("own", "shuffled"):
        raise InputError(None, f"--shuffle-references and --references {references} ask for two controls: give one")
    references = "shuffled" if shuffle_references else references
    model, state = load_model(checkpoint, model_name)
    name = state["model"]
    uses_views = spec(name).views
    if references != "own" and not uses_views:
        raise InputError(checkpoint, f"model {name!r} reads no reference: {CONTROLS[references]} change nothing")
    index = DatasetIndex.open(data, split, need_views=uses_views)
    reference_of = None if references == "own" else control_references(Path(data), index.shapes(), references)
    preds = run_inference(model, name, index, views, device, batch_size, workers, progress, amp=amp,
                          reference_of=reference_of)
    metrics = compute_metrics(preds.label, preds.score, preds.code, preds.pred_box, preds.true_box, preds.view_pred,
                              preds.view_true, cell_max=preds.cell_max, cell_prob=preds.cell_prob,
                              cell_true=preds.cell_true)
    metrics = {"model": name, "checkpoint": str(Path(checkpoint).resolve()), "data": str(Path(data).resolve()),
               "split": split, "views": views, "shuffled_references": references == "shuffled",
               "references": references,
               "compute_dtype": compute_dtype(device, amp),
               "epoch": state.get("epoch"), "step": state.get("step")} | metrics
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", preds)
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
    plot_roc(out / "roc.png", preds, name)
    draw_examples(out / "examples.png", preds, index, views, examples, reference_of)
    return metrics


def write_predictions(path: Path, p: Predictions) -> None:
    fields = ["sample_id", "shape_id", "anomaly_type", "label", "score", "pred"]
    fields += ["box_x0", "box_y0", "box_x1", "box_y1"] if p.pred_box is not None else []
    fields += ["view_pred", "view_true"] if p.view_pred is not None else []
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(fields)
    for i in range(len(p.label)):
        row = [p.sample_id[i], p.shape_id[i], TYPE_NAMES.get(int(p.code[i]), "unknown"), int(p.label[i]),
               f"{p.score[i]:.6f}", int(p.score[i] >= 0.5)]
        if p.pred_box is not None:
            row += [f"{v:.2f}" for v in p.pred_box[i]]
        if p.view_pred is not None:
            row += [int(p.view_pred[i]), int(p.view_true[i])]
        w.writerow(row)
    write_atomic(path, buf.getvalue())


def plot_roc(path: Path, p: Predictions, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    normal = p.code == 0
    curves = [("all", np.ones_like(normal))] + [(TYPE_NAMES[c], p.code == c) for c in sorted(set(p.code.tolist())) if c]
    for label, m in curves:
        sel = m | normal
        if len(np.unique(p.label[sel])) == 2:
            fpr, tpr, _ = roc_curve(p.label[sel], p.score[sel])
            ax.plot(fpr, tpr, lw=2.5 if label == "all" else 1.2,
                    label=f"{label} (AUC {roc_auc_score(p.label[sel], p.score[sel]):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


def pick_examples(p: Predictions, n: int) -> list[int]:
    """Confident hits and the worst misses of each class, then anything left, up to n."""
    order = np.argsort(-p.score)
    anomalies = [i for i in order if p.label[i] == 1]
    normals = [i for i in order[::-1] if p.label[i] == 0]
    picks: list[int] = []
    for group in (anomalies[: n // 3], normals[: n // 3], anomalies[::-1][: n // 6], normals[::-1][: n // 6]):
        picks += [int(i) for i in group if int(i) not in picks]
    picks += [int(i) for i in order if int(i) not in picks]
    return picks[:n]


def draw_examples(path: Path, p: Predictions, index: DatasetIndex, views: int, n: int,
                  reference_of: dict[str, str] | None = None) -> None:
    """Tiles of (query with true box in green and predicted box in red, predicted closest reference view)."""
    if n <= 0 or len(p.label) == 0:
        return
    ds = ShardDataset(index, views=0, train=False, augment=False, with_views=bool(index.view_shard), with_depth=False,
                      reference_of=reference_of)
    tiles = []
    for i in pick_examples(p, n):
        sample = ds[int(p.index[i])]
        q = Image.fromarray(sample["query"].permute(1, 2, 0).numpy())
        k = max(1, 192 // q.size[0])  # small test renders are upscaled so the labels stay legible
        q = q.resize((q.size[0] * k, q.size[1] * k), Image.NEAREST)
        W, H = q.size
        d = ImageDraw.Draw(q)
        if np.isfinite(p.true_box[i]).all():
            d.rectangle(tuple(float(v) * k for v in p.true_box[i]), outline=(0, 170, 0), width=2)
        if p.pred_box is not None and p.score[i] >= 0.5:
            d.rectangle(tuple(float(v) * k for v in p.pred_box[i]), outline=(220, 0, 0), width=2)
        verdict = "ok" if (p.score[i] >= 0.5) == bool(p.label[i]) else "WRONG"
        d.text((3, 2), f"{TYPE_NAMES.get(int(p.code[i]), '?')} {p.score[i]:.2f} {verdict}", fill=(0, 0, 160))
        tile = Image.new("RGB", (2 * W, H), "white")
        tile.paste(q, (0, 0))
        if "views" in sample:
            v = int(p.view_pred[i]) if p.view_pred is not None else 0
            ref = Image.fromarray(sample["views"][v].numpy()).convert("RGB").resize((W, H), Image.BILINEAR)
            ImageDraw.Draw(ref).text((3, 2), f"view {v}", fill=(0, 0, 160))
            tile.paste(ref, (W, 0))
        tiles.append(tile)
    save_grid(tiles, path, columns=3)
