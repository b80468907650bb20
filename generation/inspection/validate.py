"""``brokenchairs validate``: every shard against the schema, the manifest and each other.

Checks, each reported as ``<file>: <problem>``:
- dataset.json readable; every listed shard present, complete and of this schema;
- query shards: every field of ``dataset.schema``, equal first dimensions, dtypes and shapes, labels consistent with
  types, the ``manifest`` rows naming the same samples, ``mask_new`` inside ``object_mask``,
  anomalies with a box equal to their masks' box, normals without masks or box;
- sample ids unique over the dataset, ``manifest.jsonl`` equal to the shards' manifests;
- view shards: every field, dtype and shape of ``dataset.schema``; every query's shape has views.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from brokenchairs.data_manifests.anomaly_types import ANOMALY_CODES
from brokenchairs.dataset.dataset_json import DATASET_FILE, read_dataset
from brokenchairs.dataset.queries import bbox_of
from brokenchairs.dataset import schema
from brokenchairs.dataset.shards import SCHEMA_VERSION, as_str
from brokenchairs.errors import InputError


def _open(path: Path, kind: str, problems: list) -> h5py.File | None:
    if not path.is_file():
        problems.append((path, "listed in dataset.json but missing"))
        return None
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        problems.append((path, f"not readable HDF5 ({str(exc).splitlines()[0]})"))
        return None
    if not f.attrs.get("complete", False):
        problems.append((path, "not flagged complete"))
    if f.attrs.get("kind") != kind or int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
        problems.append((path, f"expected a {kind} shard of schema {SCHEMA_VERSION}, found "
                               f"{f.attrs.get('kind')}/{f.attrs.get('schema_version')}"))
    return f


def check_query_shard(path: Path, problems: list) -> list[tuple[str, str]]:
    """Problems of one query shard; returns its (sample_id, shape_id) rows."""
    f = _open(path, "queries", problems)
    if f is None:
        return []
    with f:
        found = schema.check(f, schema.QUERY_FIELDS)
        if found:
            problems += [(path, p) for p in found]
            return []
        n = len(f["label"])
        ids = [as_str(x) for x in f["sample_id"][()]]
        shapes = [as_str(x) for x in f["shape_id"][()]]
        label, types, bbox = f["label"][()], f["anomaly_type"][()], f["bbox"][()]
        lines = [json.loads(x) for x in f["manifest"][()]]
        if [m["sample_id"] for m in lines] != ids:
            problems.append((path, "manifest rows do not name the same samples as sample_id"))
        codes = set(ANOMALY_CODES.values())
        for i in range(n):
            sid = ids[i]
            if int(types[i]) not in codes:
                problems.append((path, f"{sid}: unknown anomaly_type code {types[i]}"))
            if bool(label[i]) != (int(types[i]) != ANOMALY_CODES["normal"]):
                problems.append((path, f"{sid}: label {label[i]} disagrees with anomaly_type {types[i]}"))
            new, old, obj = f["mask_new"][i], f["mask_old"][i], f["object_mask"][i]
            if (new & ~obj).any():
                problems.append((path, f"{sid}: mask_new has {int((new & ~obj).sum())} pixels outside object_mask"))
            if label[i]:
                want = bbox_of(new | old)
                if not np.allclose(np.nan_to_num(bbox[i], nan=-1), np.nan_to_num(want, nan=-1)):
                    problems.append((path, f"{sid}: bbox {bbox[i].tolist()} is not the masks' box {want.tolist()}"))
            elif new.any() or old.any() or np.isfinite(bbox[i]).any():
                problems.append((path, f"{sid}: a normal sample with masks or a box"))
        return list(zip(ids, shapes))


def check_view_shard(path: Path, stride: int, problems: list) -> set[str]:
    f = _open(path, "views", problems)
    if f is None:
        return set()
    with f:
        for sid, g in f.items():
            problems += [(path, f"view group {sid}: {p}") for p in schema.check(g, schema.VIEW_FIELDS, stride)]
        return set(f.keys())


def validate_dataset(root: Path) -> list[tuple[Path, str]]:
    root = Path(root)
    problems: list[tuple[Path, str]] = []
    try:
        data = read_dataset(root)
    except InputError as exc:
        return [(Path(exc.path), exc.problem)]
    if data is None:
        return [(root / DATASET_FILE, "missing: not a dataset folder")]
    rows: list[tuple[str, str]] = []
    qsec = data.get("queries") or {}
    for name in qsec.get("shards", []):
        rows += check_query_shard(root / "shards" / name, problems)
    seen: dict[str, int] = {}
    for sid, _ in rows:
        seen[sid] = seen.get(sid, 0) + 1
    dups = [s for s, c in seen.items() if c > 1]
    if dups:
        problems.append((root / "shards", f"{len(dups)} sample ids occur more than once (e.g. {dups[0]})"))
    manifest = root / "manifest.jsonl"
    if qsec.get("complete"):
        if not manifest.is_file():
            problems.append((manifest, "missing although dataset.json says the queries are complete"))
        else:
            ids = [json.loads(x)["sample_id"] for x in manifest.read_text().splitlines() if x.strip()]
            if ids != [s for s, _ in rows]:
                problems.append((manifest, f"lists {len(ids)} samples; the shards hold {len(rows)} (or another order)"))
    vsec = data.get("views") or {}
    stride = int((vsec.get("config") or {}).get("stride", 8))
    have_views: set[str] = set()
    for name in (vsec.get("shards") or {}):
        have_views |= check_view_shard(root / "shards" / name, stride, problems)
    lacking = sorted({shape for _, shape in rows} - have_views)
    if rows and lacking:
        where = root / DATASET_FILE if not vsec else root / "shards"
        problems.append((where, f"{len(lacking)} query shapes have no reference views (e.g. {lacking[0]}): "
                                "run brokenchairs render-views"))
    return problems
