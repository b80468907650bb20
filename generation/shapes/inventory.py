"""Summaries of a shape folder (``brokenchairs shapes info``) and its check (``shapes check``).

The summary is read from the JSON trees only; the check loads every mesh of every shape, as a
render worker would, and lists each broken shape with a one-line reason (the file and its problem:
a missing or empty part mesh, NaN vertices, no faces, a tree that is not PartNet's, ...), so a
fresh 27K-shape download is vetted before anything is rendered. ``generate`` runs the same check.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brokenchairs.data_manifests import load_json
from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.partnet import RESULT_FILES, find_shape_dirs, is_shape_dir, load_shape, read_tree


@dataclass
class Inventory:
    shapes: int = 0
    families: Counter = field(default_factory=Counter)
    parts_per_shape: list[int] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)
    unknown_labels: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        pps = np.array(self.parts_per_shape or [0])
        d = {k: dict(v) if isinstance(v, Counter) else v for k, v in vars(self).items()}  # asdict miscopies Counters
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


@dataclass(frozen=True)
class BrokenShape:
    folder: str
    reason: str  # one line: the offending file and its problem

    def line(self) -> str:
        return f"{self.folder}: {self.reason}"


def check_shape(folder: str | Path) -> BrokenShape | None:
    """Load every mesh of one shape folder; the reason it cannot be used, or None."""
    try:
        load_shape(folder)
    except InputError as exc:
        return BrokenShape(str(folder), str(exc) if exc.path != str(folder) else exc.problem)
    return None


def stray_folders(root: str | Path) -> list[BrokenShape]:
    """Sub-folders of a shape root that look like shapes (``objs/`` or ``meta.json``) but have no tree."""
    root = Path(root)
    if is_shape_dir(root):
        return []
    return [BrokenShape(str(p), f"missing {RESULT_FILES[0]} and {RESULT_FILES[1]}") for p in sorted(root.iterdir())
            if p.is_dir() and not is_shape_dir(p) and ((p / "objs").is_dir() or (p / "meta.json").is_file())]


def check_shapes(folders: list[Path], workers: int = 1, progress=None, pool_from: int = 64) -> list[BrokenShape]:
    """``check_shape`` of every folder (in a pool of ``workers`` processes from ``pool_from`` folders on:
    starting one costs about a second); the broken ones, in order. ``progress``: called with the
    number of shapes done since its last call."""
    folders = [Path(f) for f in folders]
    if workers <= 1 or len(folders) < max(pool_from, 2 * workers):
        results = []
        for f in folders:
            results.append(check_shape(f))
            if progress:
                progress(1)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            results = []
            for r in pool.map(check_shape, folders, chunksize=max(1, min(64, len(folders) // (8 * workers)))):
                results.append(r)
                if progress:
                    progress(1)
    return [r for r in results if r is not None]


def inventory(root: str | Path) -> Inventory:
    """The summary of every readable tree (a folder whose tree cannot be read is left to the check)."""
    known = taxonomy_paths()
    inv = Inventory()
    for folder in find_shape_dirs(root):
        try:
            paths = leaf_paths(folder)
        except InputError:
            continue
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = {}  # reported by the check
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


def vet_refs(refs: list, skip_broken: bool, out: Path | None = None, workers: int = 1,
             progress=None) -> tuple[list, list[dict]]:
    """Check the PartNet shapes among ``refs`` (``ShapeRef``) before anything is rendered: refuse
    when any is broken, or with ``skip_broken`` leave them out. Returns (refs kept, skipped
    [{shape_id, folder, reason}]). A dataset folder ``out`` whose dataset.json already records this
    plan (its shapes and skipped shapes are exactly these) was checked by whoever recorded it, so
    job-array members do not load every mesh again."""
    from brokenchairs.dataset.dataset_json import read_dataset

    to_check = [r for r in refs if r.kind == "partnet"]
    if not to_check:
        return refs, []
    ids = sorted(r.shape_id for r in refs)
    recorded = read_dataset(out) if out is not None else None
    known = None
    if recorded and recorded.get("shapes"):
        skipped = list(recorded.get("shapes_skipped") or [])
        if sorted([s["shape_id"] for s in recorded["shapes"]] + [s["shape_id"] for s in skipped]) == ids:
            known = skipped
    if known is None:
        by_folder = {str(Path(r.path)): r for r in to_check}
        broken = check_shapes([Path(r.path) for r in to_check], workers, progress)
        known = [{"shape_id": by_folder[b.folder].shape_id, "folder": b.folder, "reason": b.reason} for b in broken]
    if known and not skip_broken:
        first = known[0]
        raise InputError(first["folder"], f"{first['reason']} -- {len(known)} broken shape(s) in all; list them with "
                                          "`brokenchairs shapes check`, fix them, or pass --skip-broken to leave them out")
    dropped = {s["shape_id"] for s in known}
    return [r for r in refs if r.shape_id not in dropped], known
