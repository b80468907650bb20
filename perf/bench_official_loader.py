"""Run the authors' loader over an ``export-official`` folder and read its files with ``render_multiview``'s formulas.

Usage: python perf/bench_official_loader.py EXPORT --src /path/to/Looking3D [--draws 20]
(or BROKENCHAIRS_LOOKING3D_SRC=/path/to/Looking3D). Loads ``data/dataset_e2e.py`` from that checkout
(never copied here; needs albumentations and opencv), draws every item of each split ``--draws``
times (each draw picks other views and augmentations) and prints: items that came back ``None``,
and the draws whose ``mesh_pos_enc3d``, label, box or point pairs are off. Then, per shape: the share
of ``xyz`` points that render_multiview's projection puts in their own cell, the fewest and median
co-visible points of a view pair, and the share of co-visible points whose pixel, unprojected with
one view's ``_depth.npy`` and ``RT_``, lands within 2 px of their ``pxy`` in the other view.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np


def release_projection(cam: dict, points: np.ndarray) -> np.ndarray:
    """(row, col) as render_multiview.py computes pxy: K @ RT, then (v, 256 - u)."""
    P = np.array(cam["K"]) @ np.array(cam["RT"])[:3]
    xy = np.c_[points, np.ones(len(points))] @ P.T
    xy = xy[:, :2] / xy[:, 2:]
    return np.stack([xy[:, 1], 256 - xy[:, 0]], -1)


def release_unprojection(cam: dict, depth: np.ndarray, pxy: np.ndarray) -> np.ndarray:
    K, (row, col) = np.array(cam["K"]), pxy.T
    d = depth[row, col].astype(float)
    x, y = (col + 0.5 - K[0, 2]) / K[0, 0] * d, -(row + 0.5 - K[1, 2]) / K[1, 1] * d
    return (np.c_[x, y, -d, np.ones_like(d)] @ np.array(cam["RT_"]).T)[:, :3]


def check_loader(src: Path, root: Path, draws: int) -> None:
    spec = importlib.util.spec_from_file_location("looking3d_dataset_e2e", src / "data" / "dataset_e2e.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for mode in ("train", "val", "test"):
        data = module.dataloader(str(root), num_mesh_images=5, mode=mode)
        nones, off = 0, Counter()
        for i in range(len(data)):
            for _ in range(draws):
                item = data[i]
                if item is None:
                    nones += 1
                    continue
                name = os.path.basename(item["path"])
                off["mesh_pos_enc3d"] += item["mesh_pos_enc3d"].shape != (5, 32, 32, 3)
                off["label"] += item["labels"] != int("anomaly" in name)
                box = item["bbox"].numpy()
                off["box"] += bool(item["labels"]) and not (box.shape == (4,) and ((box >= 0) & (box <= 1)).all()
                                                            and (box[2:] > 0).all())
                off["pairs"] += item["pxy_v1"].shape != (32, 2) or item["pxy_v2"].shape != (32, 2)
        print(f"{mode}: {len(data)} images, {len(data) * draws} draws, {nones} None, off: {dict(off)}")


def check_files(root: Path) -> None:
    for d in sorted((root / "shapes").glob("shape_*")):
        pngs = sorted((d / "mv_images").glob("*.png"))
        recs = [np.load(p.with_suffix(".npy"), allow_pickle=True).item() for p in pngs]
        cams = [json.loads(p.with_suffix(".json").read_text()) for p in pngs]
        depths = [np.load(p.with_name(f"{p.stem}_depth.npy")) for p in pngs]
        in_cell = []
        for rec, cam in zip(recs, cams):
            cells = np.argwhere((rec["xyz"] != -1).any(-1))
            rc = release_projection(cam, rec["xyz"][cells[:, 0], cells[:, 1]])
            in_cell.append((np.floor(rc / 8) == cells).all(1).mean())
        counts, errs = [], []
        for a, b in itertools.permutations(range(len(pngs)), 2):
            both = np.where(recs[a]["is_visible"] & recs[b]["is_visible"])[0]
            counts.append(len(both))
            seen = release_projection(cams[b], release_unprojection(cams[a], depths[a], recs[a]["pxy"][both]))
            errs.append(np.abs(seen - recs[b]["pxy"][both]).max(1))
        e = np.concatenate(errs)
        print(f"{d.name}: {len(pngs)} views, xyz in its cell {np.mean(in_cell):.3f}, co-visible per view pair "
              f"min {min(counts)} median {int(np.median(counts))}, within 2 px {(e <= 2).mean():.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("export", type=Path)
    ap.add_argument("--src", type=Path, default=os.environ.get("BROKENCHAIRS_LOOKING3D_SRC"),
                    help="a checkout of github.com/VICO-UoE/Looking3D")
    ap.add_argument("--draws", type=int, default=20)
    args = ap.parse_args()
    if args.src:
        check_loader(Path(args.src), args.export, args.draws)
    else:
        print("no --src: the authors' loader is not run")
    check_files(args.export)


if __name__ == "__main__":
    main()
