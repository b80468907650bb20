"""Contact sheets of shapes rendered with Workbench, parts coloured by semantic label."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from brokenchairs.blender_scripts import scene as sc
from brokenchairs.dataset.cameras import Viewpoint, bbox_center, camera_for, intrinsics
from brokenchairs.generation.shapes.shape import Shape
from brokenchairs.generation.inspection.sheets import save_grid

# A fixed palette for the common labels; other labels get a stable colour from their name.
LABEL_COLORS = {
    "seat_single_surface": (0.85, 0.45, 0.25), "seat_support": (0.55, 0.35, 0.2), "seat_frame_bar": (0.7, 0.55, 0.3),
    "back_single_surface": (0.25, 0.55, 0.85), "back_surface_vertical_bar": (0.35, 0.7, 0.9),
    "back_surface_horizontal_bar": (0.3, 0.75, 0.75), "back_frame_vertical_bar": (0.2, 0.35, 0.65),
    "back_frame_horizontal_bar": (0.15, 0.3, 0.55), "back_connector": (0.55, 0.3, 0.75), "back_support": (0.5, 0.4, 0.8),
    "leg": (0.35, 0.7, 0.3), "bar_stretcher": (0.75, 0.8, 0.25), "runner": (0.45, 0.6, 0.2), "foot": (0.3, 0.5, 0.25),
    "central_support": (0.6, 0.6, 0.6), "wheel": (0.2, 0.2, 0.2), "pedestal": (0.45, 0.45, 0.5),
    "arm_sofa_style": (0.85, 0.35, 0.5), "arm_horizontal_bar": (0.9, 0.5, 0.6), "arm_near_vertical_bar": (0.75, 0.3, 0.4),
    "headrest": (0.3, 0.8, 0.6), "head_connector": (0.25, 0.6, 0.5),
}


CAPTION_H = 26


def label_color(label: str) -> tuple[float, float, float]:
    if label in LABEL_COLORS:
        return LABEL_COLORS[label]
    h = hashlib.sha1(label.encode()).digest()
    return tuple(0.25 + 0.6 * b / 255 for b in h[:3])


def render_shape_preview(shape: Shape, size: int, view: Viewpoint) -> np.ndarray:
    """One Workbench image (size x size x 3 uint8) of a shape, parts coloured by label."""
    sc.clear_objects()
    for obj, part in zip(sc.add_part_objects(shape.parts()), shape.parts()):
        obj.color = (*label_color(part.label), 1.0)
    K = intrinsics(size)
    sc.set_camera(K, camera_for(view, bbox_center(shape.bounds)), size, size)
    return sc.over_white(sc.render_rgba())


def contact_sheet(shapes: Iterable[Shape], out: Path, size: int = 256, columns: int = 6,
                  view: Viewpoint = Viewpoint(-np.pi / 2 - 0.7, 0.45)) -> int:
    """Render shapes into a captioned grid PNG at ``out``; returns the number of shapes drawn."""
    sc.init_blender()
    sc.setup_workbench()
    tiles = []
    for shape in shapes:
        img = Image.new("RGB", (size, size + CAPTION_H), "white")
        img.paste(Image.fromarray(render_shape_preview(shape, size, view)), (0, 0))
        family = shape.meta.get("family", "partnet")
        caption = f"{shape.shape_id}\n{family}, {len(shape.parts())} parts"
        ImageDraw.Draw(img).multiline_text((6, size - 4), caption, fill=(70, 70, 70), spacing=2)
        tiles.append(img)
    return save_grid(tiles, out, columns)


HIGHLIGHT = (0.9, 0.15, 0.1)
NEUTRAL = (0.75, 0.75, 0.72)


def render_highlighted(shape: Shape, highlight: set[int], size: int, view: Viewpoint, target) -> np.ndarray:
    """Workbench image with the parts in ``highlight`` (node ids) red, the rest neutral."""
    sc.clear_objects()
    for obj, part in zip(sc.add_part_objects(shape.parts()), shape.parts()):
        obj.color = (*(HIGHLIGHT if part.node_id in highlight else NEUTRAL), 1.0)
    sc.set_camera(intrinsics(size), camera_for(view, target), size, size)
    return sc.over_white(sc.render_rgba())


def before_after(before: Shape, after: Shape, highlight: set[int], out: Path, size: int = 256) -> Path:
    """A 2x2 sheet: before | after, from the front-left and the back-right, the changed parts in red."""
    sc.init_blender()
    sc.setup_workbench()
    target = bbox_center(before.bounds)  # same camera for both: the anomaly stays in the reference frame
    rows = []
    for view in (Viewpoint(-np.pi / 2 - 0.7, 0.45), Viewpoint(np.pi / 2 - 0.7, 0.45)):
        rows.append(np.concatenate([render_highlighted(before, highlight, size, view, target),
                                    render_highlighted(after, highlight, size, view, target)], axis=1))
    img = Image.fromarray(np.concatenate(rows, axis=0))
    draw = ImageDraw.Draw(img)
    draw.text((6, 4), "before", fill=(60, 60, 60))
    draw.text((size + 6, 4), "after", fill=(60, 60, 60))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
