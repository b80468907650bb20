"""Which missing-part queries only the reference can settle, and each evaluation's AUC on either kind.

A chair's part signature is how many leaf parts of each label it has (four legs, one seat, one back,
two arms ...). A missing part changes it: the photo shows a chair with the signature of
``shape.without_part``. When some *training* chair has exactly that signature, normal chairs of that
make exist, and the photo alone cannot tell the anomaly from one of them: only the reference can
(``needed``). When no training chair has it (three legs where every chair of the family has four), a
query-only model can learn the anomaly from the photo alone (``settled``). The other anomaly types
leave the signature unchanged and are in neither subset.

The split bounds what a shuffled-reference control can show: a model that reads its reference
perfectly loses its AUC on ``needed`` anomalies with another shape's reference, and may lose nothing
on ``settled`` ones, so the drop over all anomalies is diluted by the share of ``settled`` ones, a
property of the dataset, not of the model. Each subset's AUC pits its anomalies against all the
evaluation's normal queries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from brokenchairs.benchmark.bootstrap import Interval, shape_bootstrap
from brokenchairs.benchmark.evals import paired_auc, score_arrays
from brokenchairs.dataset.dataset_json import read_dataset
from brokenchairs.dataset.index import parse_split, shape_splits
from brokenchairs.errors import InputError
from brokenchairs.generation.inspection.stats import manifest_records
from brokenchairs.generation.shapes.shape import Shape
from brokenchairs.generation.shapes.sources import ShapeRef, load_ref

SUBSETS = {"needed": True, "settled": False}  # subset name -> the flag ``reference_need`` gives its queries

Signature = tuple[tuple[str, int], ...]


def part_signature(shape: Shape) -> Signature:
    """How many leaf parts of each label the shape has, sorted by label."""
    return tuple(sorted(Counter(p.label for p in shape.parts()).items()))


def reference_need(root: Path, split: str = "test") -> dict[str, bool]:
    """Sample id -> True (only the reference can settle it) or False (the photo can) for every
    missing-part query of ``split``; the training split's shapes are the chairs a model has seen."""
    return {sid: needed for sid, (_, needed) in missing_part_need(root, split).items()}


def missing_part_need(root: Path, split: str = "test") -> dict[str, tuple[str, bool]]:
    """Sample id -> (the label of the part it misses, whether only the reference can settle it) for
    every missing-part query of ``split`` (``reference_need``)."""
    root = Path(root)
    data = read_dataset(root)
    if data is None:
        raise InputError(root, "not a dataset folder (no dataset.json)")
    refs = {d["shape_id"]: ShapeRef.from_json(d) for d in data.get("shapes", [])}

    def shape(sid: str) -> Shape:
        if sid not in refs:
            raise InputError(root / "dataset.json", f"lists no shape {sid} (named by its splits or manifest)")
        return load_ref(refs[sid])

    splits, wanted = shape_splits(data), parse_split(split)
    train = [sid for sid, name in splits.items() if name == "train"]
    if not train:
        raise InputError(root / "dataset.json", "has no training shapes to compare part signatures with")
    seen = {part_signature(shape(sid)) for sid in train}
    need: dict[str, tuple[str, bool]] = {}
    after: dict[tuple[str, int], tuple[str, bool]] = {}  # (shape, removed node) -> (its label, needed)
    loaded: dict[str, Shape] = {}
    for r in manifest_records(root):
        if r.get("anomaly_type") != "missing" or splits.get(r["shape_id"]) not in wanted:
            continue
        part = (r.get("record") or {}).get("part_id")
        if part is None:
            raise InputError(root / "manifest.jsonl", f"{r['sample_id']}: a missing-part record without its part_id")
        key = (r["shape_id"], int(part))
        if key not in after:
            if r["shape_id"] not in loaded:
                loaded[r["shape_id"]] = shape(r["shape_id"])
            chair = loaded[r["shape_id"]]
            after[key] = chair.node(key[1]).label, part_signature(chair.without_part(key[1])) in seen
        need[r["sample_id"]] = after[key]
    return need


def _auc(summary: dict, ids: list[str], replicates: int) -> Interval | None:
    y, s, shapes = score_arrays(summary["preds"], ids)
    return shape_bootstrap(y, s, shapes, replicates) if len(np.unique(y)) == 2 else None


def need_breakdown(a: dict, need: dict[str, bool], replicates: int, others: dict[str, dict] | None = None) -> dict:
    """Per subset (``SUBSETS``): the count of its anomalies that ``a`` (a ``row_summary`` or ensemble)
    scored, ``auc``: a's AUC on them against all its normal queries, and for each of ``others``
    (other scorings of the same queries by name: another model, a's checkpoint with shuffled
    references) the paired difference a - other over test shapes on the queries both scored.
    Intervals are 95%, ``None`` where a subset has no anomaly."""
    out = {}
    for name, flag in SUBSETS.items():
        ids = [i for i in a["ids"] if a["preds"][i]["label"] == "0" or need.get(i) is flag]
        entry: dict = {"anomalies": sum(1 for i in ids if i in need), "auc": _auc(a, ids, replicates)}
        for key, other in (others or {}).items():
            entry[key] = paired_auc({"preds": a["preds"], "ids": ids}, other, replicates)
        out[name] = entry
    return out


def need_counts(need: dict[str, bool]) -> dict[str, int]:
    return {name: sum(1 for v in need.values() if v == flag) for name, flag in SUBSETS.items()}


def need_by_label(need: dict[str, tuple[str, bool]]) -> list[tuple[str, int, int]]:
    """(removed part label, queries only the reference can settle, queries) per label, most queries first."""
    total, needed = Counter(label for label, _ in need.values()), Counter(label for label, n in need.values() if n)
    return [(label, needed[label], count) for label, count in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))]
