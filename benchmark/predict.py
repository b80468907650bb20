"""``brokenchairs predict``: score a user's photos against their reference mesh.

The mesh's reference views are rendered exactly as for a dataset (render-views, at the
resolution the model was trained at) into ``OUT/reference``; each photo is padded to a square
with white (keeping its aspect ratio) and resized to that resolution. Models are trained on
renders on a white ground: a photo with a cluttered background is accepted, but scores are only
trustworthy once the background is removed (the paper segments real photos first, section 5.2).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError
from torchvision.ops import box_convert

from brokenchairs.benchmark.checkpoint import load_model
from brokenchairs.benchmark.data import prepare_batch, select_views
from brokenchairs.errors import InputError
from brokenchairs.extras import require_render
from brokenchairs.models import spec

WHITE_BORDER = 235  # mean border brightness below this = "not a white background"


@dataclass
class PhotoResult:
    image: str
    label: str
    score: float
    box: list[float] | None  # xyxy in the photo's own pixels
    white_background: bool
    overlay: str


def load_photo(path: Path, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """(size,size,3) uint8, the scale photo->square, and the (left, top) padding in photo pixels."""
    try:
        img = Image.open(path)
        img.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(path, f"not a readable image ({exc.__class__.__name__})") from exc
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    img = img.convert("RGB")
    w, h = img.size
    side = max(w, h)
    square = Image.new("RGB", (side, side), "white")
    pad = ((side - w) // 2, (side - h) // 2)
    square.paste(img, pad)
    return np.array(square.resize((size, size), Image.BICUBIC)), side / size, pad


def white_background(image: np.ndarray) -> bool:
    border = np.concatenate([image[:4].reshape(-1, 3), image[-4:].reshape(-1, 3), image[:, :4].reshape(-1, 3),
                             image[:, -4:].reshape(-1, 3)])
    return float(border.mean()) >= WHITE_BORDER


def reference_batch(mesh: Path, up: str, out: Path, resolution: int, views: int) -> dict:
    from brokenchairs.generation.pipeline.reference_views import render_reference_views
    from brokenchairs.generation.units.tasks import ViewsConfig
    from brokenchairs.dataset.shards import read_views
    from brokenchairs.generation.shapes.sources import mesh_ref

    ref = mesh_ref(mesh, up)
    root = out / "reference"
    render_reference_views(root, [ref], ViewsConfig(views=max(views, 1), resolution=resolution), workers=1)
    vs = read_views(root / "shards" / "views-00000.h5", ref.shape_id)
    sel = select_views(vs.num_views, views, None)
    return {"views": torch.from_numpy(vs.gray[sel])[None], "patch_xyz": torch.from_numpy(vs.patch_xyz[sel])[None],
            "patch_valid": torch.from_numpy(vs.patch_valid[sel])[None]}


def predict(mesh: Path, images: list[Path], checkpoint: Path, out: Path, up: str = "z", views: int = 20,
            device: str = "cpu") -> list[PhotoResult]:
    if not images:
        raise InputError(None, "give at least one --image")
    model, state = load_model(checkpoint)
    name, res = state["model"], int(state.get("resolution") or 256)
    if spec(name).views:
        require_render(f"predict with {name} (it renders the mesh's reference views)")
    out = Path(out)
    photos = [load_photo(Path(p), res) for p in images]  # every photo is checked before any rendering
    from brokenchairs.generation.shapes.sources import load_ref, mesh_ref

    load_ref(mesh_ref(mesh, up))  # and the mesh: a bad one fails here, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    refs = reference_batch(Path(mesh), up, out, res, views) if spec(name).views else {}
    model.eval().to(device)
    results = []
    for path, (arr, scale, pad) in zip(images, photos):
        batch = {"query": torch.from_numpy(arr).permute(2, 0, 1)[None], **refs}
        with torch.no_grad():
            o = model(prepare_batch(batch, device))
        score = float(torch.sigmoid(o["logits"].float())[0])
        box = None
        if "boxes" in o and score >= 0.5:
            b = box_convert(o["boxes"].float(), "cxcywh", "xyxy")[0].cpu().numpy() * res
            box = [float(b[0] * scale - pad[0]), float(b[1] * scale - pad[1]), float(b[2] * scale - pad[0]),
                   float(b[3] * scale - pad[1])]
        overlay = out / f"{Path(path).stem}-overlay.png"
        _draw_overlay(arr, score, o, overlay, res)
        results.append(PhotoResult(str(path), "anomaly" if score >= 0.5 else "normal", score, box,
                                   white_background(arr), str(overlay)))
    (out / "predictions.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    return results


def _draw_overlay(arr: np.ndarray, score: float, o: dict, path: Path, res: int) -> None:
    img = Image.fromarray(arr).resize((max(res, 256), max(res, 256)), Image.BICUBIC)
    s = img.size[0] / res
    d = ImageDraw.Draw(img)
    if "boxes" in o and score >= 0.5:
        b = box_convert(o["boxes"].float(), "cxcywh", "xyxy")[0].cpu().numpy() * res * s
        d.rectangle(tuple(float(v) for v in b), outline=(220, 0, 0), width=3)
    d.rectangle((0, 0, img.size[0], 16), fill=(255, 255, 255))
    d.text((4, 2), f"{'ANOMALY' if score >= 0.5 else 'normal'}  score {score:.3f}", fill=(200, 0, 0) if score >= 0.5 else (0, 120, 0))
    img.save(path)
