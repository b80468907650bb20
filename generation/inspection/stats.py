"""``brokenchairs stats``: the paper's Table 1 for a dataset, split sizes, anomalies per part label.

Counts come from the manifest lines (``manifest.jsonl``, or the ``manifest`` dataset of each
complete shard while a run is unfinished). Table 1's "#Shapes" of an anomaly type is the number
of variants of that type with at least one kept image, "#Views" the [min, max, median] images per
variant; for normal, per shape. Normal twins (``--twins``) are counted apart, not as normal views.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.errors import InputError
from brokenchairs.data_manifests import load_json
from brokenchairs.dataset.dataset_json import read_dataset
from brokenchairs.dataset.shards import is_complete, read_manifest_lines


def manifest_records(root: Path) -> list[dict]:
    root = Path(root)
    data = read_dataset(root)
    if data is None:
        raise InputError(root, "not a dataset folder (no dataset.json)")
    qsec = data.get("queries") or {}
    manifest = root / "manifest.jsonl"
    if qsec.get("complete") and manifest.is_file():
        lines = manifest.read_text().splitlines()
    else:
        lines = [line for name in qsec.get("shards", []) if is_complete(root / "shards" / name)
                 for line in read_manifest_lines(root / "shards" / name)]
    try:
        return [json.loads(x) for x in lines if x.strip()]
    except json.JSONDecodeError as exc:
        raise InputError(manifest, f"a manifest line is not JSON ({exc})") from exc


def _views(counts: list[int]) -> list:
    return [min(counts), max(counts), statistics.median(counts)] if counts else [0, 0, 0]


def dataset_stats(root: Path) -> dict:
    root = Path(root)
    data = read_dataset(root) or {}
    recs = manifest_records(root)
    per_unit: dict[str, Counter] = defaultdict(Counter)
    twins = 0
    for r in recs:
        if r["anomaly_type"] == "normal" and r.get("twin"):
            twins += 1
            continue
        per_unit[r["anomaly_type"]][r["unit_id"]] += 1
    table = {}
    for kind in (*ANOMALY_TYPES, "normal"):
        counts = list(per_unit.get(kind, Counter()).values())
        table[kind] = {"shapes": len(counts), "images": sum(counts), "views": _views(counts)}
    anomaly_counts = [c for k in ANOMALY_TYPES for c in per_unit.get(k, Counter()).values()]
    table["anomaly"] = {"shapes": len(anomaly_counts), "images": sum(anomaly_counts), "views": _views(anomaly_counts)}
    split_of = {sid: name for name, ids in ((data.get("splits") or {}).get("shapes") or {}).items() for sid in ids}
    splits: dict[str, dict] = {}
    for name in ("train", "val", "test"):
        ids = {sid for sid, s in split_of.items() if s == name}
        imgs = [r for r in recs if r["shape_id"] in ids]
        splits[name] = {"shapes": len(ids), "images": len(imgs), "anomaly": sum(r["label"] for r in imgs)}
    labels: dict[str, Counter] = defaultdict(Counter)
    for r in recs:
        if r["label"]:
            labels[r["anomaly_type"]][r["part_path"].rsplit("/", 1)[-1] or "?"] += 1
    return {"queries": len(recs), "normal_twins": twins, "table1": table, "splits": splits,
            "part_labels": {k: dict(v.most_common()) for k, v in labels.items()},
            "complete": bool((data.get("queries") or {}).get("complete"))}


def format_stats(s: dict) -> str:
    kinds = (*ANOMALY_TYPES, "anomaly", "normal")
    head = ["", *[k.capitalize() for k in ANOMALY_TYPES], "#Anomaly", "#Normal"]
    rows = [("#Shapes", lambda e: f"{e['shapes']:,}"), ("#Images", lambda e: f"{e['images']:,}"),
            ("#Views", lambda e: "[{},{},{:g}]".format(*e["views"]))]
    paper = load_json("table1.json")
    paper_row = {**paper["types"], "anomaly": paper["anomaly"], "normal": paper["normal"]}
    lines = ["Table 1 (views = [min, max, median] images per variant; normal: per shape; paper rows in italics)",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shapes = max(s["table1"]["normal"]["shapes"], 1)
    for name, fmt in rows:
        lines.append("| " + " | ".join([name, *[fmt(s["table1"][k]) for k in kinds]]) + " |")
        if name == "#Shapes":
            share = lambda e: f"{100 * e['shapes'] / shapes:.0f}%"  # noqa: E731
            lines.append("| " + " | ".join(["share of shapes", *[share(s["table1"][k]) for k in ANOMALY_TYPES], "", ""]) + " |")
            lines.append("| " + " | ".join(["*paper share*", *[f"*{100 * paper_row[k]['shapes'] / paper['shapes']:.0f}%*"
                                                              for k in ANOMALY_TYPES], "", ""]) + " |")
        if name == "#Views":
            lines.append("| " + " | ".join(["*paper #Views*", *["*[{},{},{}]*".format(*paper_row[k]["views"]) for k in kinds]])
                         + " |")
    total = s["table1"]["anomaly"]["images"] + s["table1"]["normal"]["images"]
    if total:
        lines.append(f"\nanomalous images: {100 * s['table1']['anomaly']['images'] / total:.1f}% "
                     f"(paper: {paper['anomaly']['images']:,} of about {paper['images_total_approx']:,}, "
                     f"{100 * paper['anomaly']['images'] / paper['images_total_approx']:.0f}%)")
    lines.append(f"\nqueries: {s['queries']:,}" + (f" (+ {s['normal_twins']:,} normal twins)" if s["normal_twins"] else "")
                 + ("" if s["complete"] else "  [run not complete: counts from finished shards]"))
    lines.append("splits: " + ", ".join(f"{k} {v['shapes']} shapes / {v['images']} images ({v['anomaly']} anomalous)"
                                        for k, v in s["splits"].items()))
    lines.append("anomalies per part label:")
    for kind, counts in s["part_labels"].items():
        lines.append(f"  {kind:9s} " + ", ".join(f"{lab} {n}" for lab, n in counts.items()))
    return "\n".join(lines)
