"""Summaries of a shape folder (``brokenchairs shapes info``), read from the JSON trees only."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from brokenchairs.data_manifests import load_json
from brokenchairs.generation.partnet import find_shape_dirs, read_tree


@dataclass
class Inventory:
    shapes: int = 0
    families: Counter = field(default_factory=Counter)
    parts_per_shape: list[int] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)
    unknown_labels: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        pps = np.array(self.parts_per_shape or [0])
        d = asdict(self)
        d["parts_per_shape"] = {"min": int(pps.min()), "median": float(np.median(pps)), "max": int(pps.max())}
        return d


def taxonomy_paths() -> set[str]:
    return set(load_json("chair_taxonomy.json")["paths"])


def leaf_nodes(folder: Path) -> list[tuple[int, str]]:
    """(node id, label path) of the leaves of one PartNet folder, without reading any mesh."""
    _, root = read_tree(folder)
    out: list[tuple[int, str]] = []
    stack = [(str(root.get("name") or root.get("text")), root)]
    while stack:
        path, node = stack.pop()
        kids = node.get("children") or []
        if not kids:
            out.append((int(node.get("id", -1)), path))
        stack.extend((f"{path}/{k.get('name') or k.get('text')}", k) for k in reversed(kids))
    return out


def leaf_paths(folder: Path) -> list[str]:
    return [path for _, path in leaf_nodes(folder)]


def inventory(root: str | Path) -> Inventory:
    known = taxonomy_paths()
    inv = Inventory()
    for folder in find_shape_dirs(root):
        paths = leaf_paths(folder)
        meta_path = folder / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        inv.shapes += 1
        inv.families[meta.get("family", "partnet")] += 1
        inv.parts_per_shape.append(len(paths))
        for p in paths:
            inv.labels[p.rsplit("/", 1)[-1]] += 1
            if p not in known:
                inv.unknown_labels[p] += 1
    return inv


def format_inventory(inv: Inventory) -> str:
    s = inv.summary()
    pps = s["parts_per_shape"]
    lines = [
        f"shapes           {inv.shapes}",
        f"parts per shape  min {pps['min']}  median {pps['median']:g}  max {pps['max']}",
        f"families         {len(inv.families)}",
    ]
    lines += [f"  {name:<22}{n:>6}" for name, n in sorted(inv.families.items())]
    lines.append("leaf labels")
    lines += [f"  {label:<30}{n:>6}" for label, n in inv.labels.most_common()]
    if inv.unknown_labels:
        lines.append("label paths not in the taxonomy")
        lines += [f"  {p:<60}{n:>6}" for p, n in inv.unknown_labels.most_common()]
    return "\n".join(lines)
