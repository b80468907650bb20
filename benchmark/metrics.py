"""The paper's metrics (Table 2 + section 5), computed with scikit-learn (and numpy for box IoU).

``compute_metrics`` takes per-sample arrays and returns a JSON-ready dict:
- ``auc``, ``accuracy`` (threshold 0.5 on the sigmoid score), ``precision``/``recall``/``f1`` of
  the anomaly class, ``normal_accuracy``/``anomaly_accuracy``;
- ``per_type``: for each anomaly type, its accuracy and the AUC of that type against all normals;
- box metrics when boxes are predicted: ``box_ap50`` -- one box per image ranked by its anomaly
  score, a true positive when the image is anomalous and IoU >= 0.5 with its box, recall over all
  ground-truth boxes (VOC-style AP, non-interpolated; the paper's "average precision" of 5.1) --,
  ``mean_iou`` over all anomalous images, and the released code's two figures (``train.py``
  ``calculate_bbox_accuracy``/``test``): ``box_acc`` ("BoxAcc", the share of anomalous images
  flagged anomalous whose box has IoU > 0.5) and ``box_iou_flagged`` (their mean IoU);
- ``viewpoint_accuracy`` when views are predicted: the share of normal queries whose predicted
  closest reference view is the true closest one (paper 5 evaluates on normal test queries), and
  ``viewpoint_accuracy_all`` over every query;
- with a per-cell head (``cell_weight`` > 0, a deviation): ``cell_auc``, the AUC of each query's
  highest cell probability as its anomaly score, and ``cell_localisation_auc``, the AUC of the cell
  probabilities against the cells the anomaly touches, over the anomalous queries' object cells.
Undefined values (an AUC over one class) are ``None``, never a made-up number.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, precision_recall_fscore_support, roc_auc_score

from brokenchairs.data_manifests.anomaly_types import ANOMALY_CODES, TYPE_NAMES


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else None


def _acc(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(accuracy_score(y, p)) if len(y) else None


def paired_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU of pred[i] with true[i] (xyxy, any units), element-wise: memory linear in the count."""
    pred, true = np.asarray(pred, float).reshape(-1, 4), np.asarray(true, float).reshape(-1, 4)
    wh = np.clip(np.minimum(pred[:, 2:], true[:, 2:]) - np.maximum(pred[:, :2], true[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    union = area(pred) + area(true) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def released_box_accuracy(labels: np.ndarray, flagged: np.ndarray, pred: np.ndarray,
                          true: np.ndarray) -> tuple[float | None, float | None]:
    """The released code's (BoxAcc, mean IoU): over anomalous images flagged anomalous, the share
    whose box has IoU > 0.5, and their mean IoU; (None, None) when no image qualifies."""
    sel = (np.asarray(labels) == 1) & np.asarray(flagged, bool) & np.isfinite(true).all(1)
    if not sel.any():
        return None, None
    ious = paired_iou(pred[sel], true[sel])
    return float((ious > 0.5).mean()), float(ious.mean())


def box_ap(scores: np.ndarray, pred: np.ndarray, true: np.ndarray, iou_threshold: float = 0.5) -> float | None:
    """AP of one predicted box per image; ``true`` rows are NaN where the image has no box."""
    has = np.isfinite(true).all(1)
    n_gt = int(has.sum())
    if n_gt == 0:
        return None
    tp = np.zeros(len(scores), bool)
    tp[has] = paired_iou(pred[has], true[has]) >= iou_threshold
    if not tp.any():
        return 0.0
    # sklearn's AP averages precision at each true positive over sum(tp); recall here is over n_gt
    return float(average_precision_score(tp, scores) * tp.sum() / n_gt)


def compute_metrics(labels, scores, codes, pred_boxes=None, true_boxes=None, view_pred=None, view_true=None,
                    threshold: float = 0.5, cell_max=None, cell_prob=None, cell_true=None) -> dict:
    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, float)
    c = np.asarray(codes).astype(int)
    p = (s >= threshold).astype(int)
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, average="binary", zero_division=0)
    out = {"n": int(len(y)), "n_anomaly": int(y.sum()), "n_normal": int((y == 0).sum()), "threshold": threshold,
           "auc": _auc(y, s), "accuracy": _acc(y, p), "precision": float(prec), "recall": float(rec), "f1": float(f1),
           "normal_accuracy": _acc(y[y == 0], p[y == 0]), "anomaly_accuracy": _acc(y[y == 1], p[y == 1]), "per_type": {}}
    normal = c == ANOMALY_CODES["normal"]
    for code in sorted(set(c.tolist())):
        name = TYPE_NAMES.get(code, str(code))
        m = c == code
        entry = {"n": int(m.sum()), "accuracy": _acc(y[m], p[m])}
        if code != ANOMALY_CODES["normal"]:
            both = m | normal
            entry["auc"] = _auc(y[both], s[both])
        out["per_type"][name] = entry
    if pred_boxes is not None and true_boxes is not None:
        pb, tb = np.asarray(pred_boxes, float), np.asarray(true_boxes, float)
        has = np.isfinite(tb).all(1)
        out["box_ap50"] = box_ap(s, pb, tb, 0.5)
        out["mean_iou"] = float(paired_iou(pb[has], tb[has]).mean()) if has.any() else None
        out["box_acc"], out["box_iou_flagged"] = released_box_accuracy(y, p, pb, tb)
    if view_pred is not None and view_true is not None:
        vp, vt = np.asarray(view_pred), np.asarray(view_true)
        out["viewpoint_accuracy"] = _acc(vt[y == 0], vp[y == 0])
        out["viewpoint_accuracy_all"] = _acc(vt, vp)
    if cell_max is not None:
        out["cell_auc"] = _auc(y, np.asarray(cell_max, float))
        out["cell_localisation_auc"] = _auc(np.asarray(cell_true).astype(int), np.asarray(cell_prob, float))
    return out
