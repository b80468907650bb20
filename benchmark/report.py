"""``brokenchairs report``: a Markdown table in the layout of the paper's Table 2 across runs."""

from __future__ import annotations

import json
from pathlib import Path

from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES as TYPES  # benchmark/table2.py imports TYPES from here
from brokenchairs.errors import InputError
from brokenchairs.models.registry import MODEL_NAMES, REGISTRY

ORDER = list(MODEL_NAMES)


def find_metrics(path: Path) -> Path:
    """A metrics.json itself, or the one inside a run/eval folder (``metrics.json`` or ``eval*/metrics.json``)."""
    path = Path(path)
    if path.is_file():
        return path
    for cand in [path / "metrics.json", *sorted(path.glob("eval*/metrics.json"))]:
        if cand.is_file():
            return cand
    raise InputError(path, "no metrics.json here: run brokenchairs eval --out <this folder> first")


def load_metrics(path: Path) -> dict:
    path = find_metrics(path)
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    for key in ("model", "auc", "accuracy"):
        if key not in m:
            raise InputError(path, f"not a brokenchairs metrics.json (no {key!r})")
    return m | {"_path": str(path)}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown_table(rows: list[dict]) -> str:
    views = lambda name: REGISTRY[name].views if name in REGISTRY else False  # noqa: E731
    rows = sorted(rows, key=lambda m: (views(m["model"]), ORDER.index(m["model"]) if m["model"] in ORDER else 99))
    head = ["3D Ref.", "Method", "AUC", "Accuracy"] + [f"Acc. {t}" for t in TYPES] + ["Box AP50", "BoxAcc", "View acc.",
                                                                                   "split", "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    best_auc = max((m["auc"] for m in rows if m["auc"] is not None), default=None)
    best_acc = max((m["accuracy"] for m in rows if m["accuracy"] is not None), default=None)
    for m in rows:
        auc, acc = _pct(m["auc"]), _pct(m["accuracy"])
        auc = f"**{auc}**" if m["auc"] is not None and m["auc"] == best_auc and len(rows) > 1 else auc
        acc = f"**{acc}**" if m["accuracy"] is not None and m["accuracy"] == best_acc and len(rows) > 1 else acc
        per = [_pct((m.get("per_type", {}).get(t) or {}).get("accuracy")) for t in TYPES]
        label = REGISTRY[m["model"]].label if m["model"] in REGISTRY else m["model"]
        cells = ["✓" if views(m["model"]) else "✗", label, auc, acc, *per,
                 _pct(m.get("box_ap50")), _pct(m.get("box_acc")), _pct(m.get("viewpoint_accuracy")), str(m.get("split", "")),
                 str(m.get("n", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(paths: list[Path], out: Path | None = None) -> str:
    if not paths:
        raise InputError(None, "give at least one run folder or metrics.json")
    text = markdown_table([load_metrics(p) for p in paths])
    if out is not None:
        Path(out).write_text(text)
    return text
