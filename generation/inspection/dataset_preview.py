"""Contact sheets of a generated dataset, annotated like the authors' preview of BrokenChairs-180K:
``mask_new`` filled red, ``mask_old`` outlined green, the box in blue with the anomaly type; the
reference view of the same shape (nearest azimuth) beside each query when view shards exist.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_erosion

from brokenchairs.errors import InputError
from brokenchairs.dataset.dataset_json import read_dataset
from brokenchairs.dataset.shards import open_shard
from brokenchairs.generation.inspection.sheets import save_grid

RED, GREEN, BLUE = (220, 30, 30), (40, 200, 60), (40, 110, 230)


def annotate(image: np.ndarray, mask_new: np.ndarray, mask_old: np.ndarray, bbox: np.ndarray, label: str,
             scale: int = 1) -> Image.Image:
    img = image.astype(np.float32).copy()
    img[mask_new] = 0.45 * img[mask_new] + 0.55 * np.array(RED)
    outline = mask_old & ~binary_erosion(mask_old, iterations=1)
    img[outline] = GREEN
    out = Image.fromarray(img.astype(np.uint8))
    if scale != 1:
        out = out.resize((out.width * scale, out.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(out)
    if np.isfinite(bbox).all():
        x0, y0, x1, y1 = (float(v) * scale for v in bbox)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=BLUE, width=max(1, scale))
        tw = 6 * len(label) + 4
        ty = max(0, y0 - 12)
        draw.rectangle([x0, ty, x0 + tw, ty + 11], fill=BLUE)
        draw.text((x0 + 2, ty), label, fill=(255, 255, 255))
    else:
        draw.text((4, 2), label, fill=(90, 90, 90))
    return out


def _pick(lines: list[dict], kind: str | None, n: int) -> list[dict]:
    if kind:
        chosen = [x for x in lines if x["anomaly_type"] == kind]
        if not chosen:
            raise InputError(None, f"the dataset has no {kind!r} samples")
        return chosen[:n]
    by_type: dict[str, list[dict]] = defaultdict(list)
    for x in lines:
        by_type[x["anomaly_type"]].append(x)
    out, i = [], 0
    while len(out) < n and any(i < len(v) for v in by_type.values()):  # round-robin over types
        for t in sorted(by_type):
            if i < len(by_type[t]) and len(out) < n:
                out.append(by_type[t][i])
        i += 1
    return out


def _view_shard_of(root: Path) -> dict[str, Path]:
    """shape id -> its view shard, from dataset.json (written by render-views); empty if none."""
    shards = ((read_dataset(root) or {}).get("views") or {}).get("shards", {})
    return {sid: root / "shards" / name for name, ids in shards.items() for sid in ids if (root / "shards" / name).is_file()}


def _reference_view(shard: Path, shape_id: str, azimuth: float) -> np.ndarray:
    with open_shard(shard, "views") as f:
        g = f[shape_id]
        d = np.angle(np.exp(1j * (g["azimuth"][()] - azimuth)))
        return g["gray"][int(np.argmin(np.abs(d)))]


def dataset_sheet(root: str | Path, out: str | Path, kind: str | None = None, n: int = 24, columns: int = 6,
                  scale: int = 1) -> int:
    root = Path(root)
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise InputError(manifest, "no manifest: run `brokenchairs generate` for this folder first")
    lines = [json.loads(x) for x in manifest.read_text().splitlines() if x.strip()]
    picked = _pick(lines, kind, n)
    view_shard = _view_shard_of(root)
    tiles = []
    for x in picked:
        with open_shard(root / "shards" / x["shard"], "queries") as f:
            r = x["row"]
            tile = annotate(f["image"][r], f["mask_new"][r], f["mask_old"][r], f["bbox"][r], x["anomaly_type"], scale)
        if x["shape_id"] in view_shard:
            ref = _reference_view(view_shard[x["shape_id"]], x["shape_id"], x["azimuth"])
            ref_img = Image.fromarray(ref).convert("RGB").resize(tile.size)
            both = Image.new("RGB", (tile.width * 2, tile.height), "white")
            both.paste(ref_img, (0, 0))
            both.paste(tile, (tile.width, 0))
            tile = both
        tiles.append(tile)
    return save_grid(tiles, out, columns)
