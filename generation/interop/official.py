"""The authors' release layout of BrokenChairs-180K: names, frames and conventions, written once.

``export-official`` (``official_export``) writes it and ``import-official`` (``official_import``)
reads it. Every field below is what the authors' released code reads (github.com/VICO-UoE/Looking3D:
``data/dataset_e2e.py`` class ``dataloader``, fed by ``utils/render_multiview.py``), checked against
that source; fields marked "ours" are extras their code never reads.

- ``images/<type>/render_<rest>.png``, ``<rest>`` = ``<shape>_<texture>_<radius>_<azim>_<elev>_<light>_<tag>``;
  the loader takes the shape id as the second ``_`` field of the name (so shape ids hold no ``_``), calls an
  image anomalous when ``anomaly`` occurs in its name, and keeps images whose shape id is in
  ``split.json[mode]``. Tag ``normal`` or ``anomaly_<type>``; azimuth and elevation in degrees (at most
  two decimals); texture ``t`` + a hash of our material id. Images are 256 x 256 RGB.
- ``annotations/<type>/info_<rest>.json`` (the loader derives it from the image path: ``/images/`` ->
  ``/annotations/``, ``/render_`` -> ``/info_``): ``2d_bbox`` [x, y, w, h] in a 512 x 512 frame (the loader
  divides by 512 and converts to a centred box), ``IoU`` (of mask_new and mask_old), ``texture_id``, ``K``
  and ``RT`` (the conventions below); ours also ``sample_id``, ``shape_id``, ``anomaly_type``,
  ``part_path``, ``material_id``, ``azimuth_rad``, ``elevation_rad``, ``radius``, ``light``. Written for
  normal images too (``2d_bbox`` and ``IoU`` null), which the loader never opens.
  ``mask_new_<rest>.png`` / ``mask_old_<rest>.png`` (0/255, named like the info file; no mask_new when it is
  empty, as for a missing part). No released code reads masks, ``K``, ``RT``, ``IoU`` or ``texture_id``.
- ``shapes/shape_<id>/mv_images/<view>.png`` grayscale 256 x 256 reference views, and per view as
  ``render_multiview.py`` writes them: ``<view>.json`` {``K``, ``RT``, ``RT_``}, ``<view>_depth.npy``
  (float32 camera z-depth, 0 on background) and ``<view>.npy``, a pickled dict of
  ``pxy`` (P, 2) int64 and ``is_visible`` (P,) bool for ONE set of P = 2000 area-uniform surface points
  of the shape shared by all its views (the loader pairs a point across two views by its index), and
  ``xyz`` (32, 32, 3) float64: a surface point seen in each cell of the stride-8 grid, -1 where none.
- ``split.json``: {"train": [shape ids], "val": [...], "test": [...]}.

Conventions (render_multiview's): ``RT`` is world-to-camera in the OpenGL frame (x right, y up,
z backwards: the object has z < 0), ``RT_`` its inverse (the camera pose); ``K`` is ours (principal point
at the image centre, pixel centres at +0.5), so ``K @ RT[:3]`` projects to (u', v) with ``256 - u'`` the
column and ``v`` the row. ``pxy`` is (row, col): the training code takes ``floor(pxy / 8)`` as the
(row, col) of a feature cell (``uv[..., 0] * fH + uv[..., 1]``); we write the pixel that contains the
point (render_multiview rounds, half a pixel off). ``xyz`` cell (i, j) covers pixel rows 8i..8i+7 and
columns 8j..8j+7 (render_multiview's rounding centres cells half a cell earlier). World coordinates are
ours (z up, chair on z = 0, diagonal 1); the release's are its meshes' (y up): the loader uses ``xyz``
only as a positional encoding, so training on an export is unaffected, but a model trained on the
release sees another frame. Our older exports wrote ``info_render_<rest>.json`` / ``mask_*_render_<rest>``,
OpenCV ``RT`` (z forwards), per-cell ``pxy``/``is_visible`` and depth in ``mv_depth/<view>.npy``; the
importer reads those too.
"""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np

from brokenchairs.errors import InputError

SIZE = 256  # the release's image and reference-view size
BOX_FRAME = 512  # 2d_bbox is given in a 512 x 512 frame
GRID = 32  # xyz cells per side (stride 8 at 256)
POINTS = 2000  # surface points per shape (render_multiview samples 2000)
NAME = re.compile(r"^render_(?P<shape>[^_]+)_(?P<tex>[^_]+)_(?P<radius>-?[\d.]+)_(?P<azim>-?[\d.]+)_(?P<elev>-?[\d.]+)"
                  r"_(?P<light>[^_]+)_(?P<tag>normal.*|anomaly.*)$")
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])  # flips y and z: OpenCV camera <-> OpenGL camera


def texture_id(material_id: str) -> str:
    return "t" + hashlib.sha1(material_id.encode()).hexdigest()[:8]


def degrees_text(radians: float) -> str:
    """An angle for a file name: degrees, at most two decimals, no trailing zeros ('180', '27.35')."""
    return f"{round(math.degrees(radians), 2) + 0.0:g}"


def check_shape_id(shape_id: str, source=None) -> None:
    """The loader reads the id as the second '_' field of a file name and calls a name with 'anomaly' anomalous."""
    if "_" in shape_id or "anomaly" in shape_id or "/" in shape_id:
        raise InputError(source, f"shape id {shape_id!r} cannot go into the release's file names "
                               "(the authors' loader needs ids without '_', '/' or 'anomaly')")


def image_stem(shape_id: str, material_id: str, radius: float, azimuth: float, elevation: float, light: int,
               anomaly_type: str) -> str:
    tag = "normal" if anomaly_type == "normal" else f"anomaly_{anomaly_type}"
    return (f"render_{shape_id}_{texture_id(material_id)}_{radius:g}_{degrees_text(azimuth % (2 * math.pi))}"
            f"_{degrees_text(elevation)}_{light}_{tag}")


def annotation_name(stem: str, kind: str) -> str:
    """``info`` -> ``info_<rest>.json``; ``mask_new``/``mask_old`` -> ``<kind>_<rest>.png`` (the loader's rule)."""
    rest = stem.removeprefix("render_")
    return f"info_{rest}.json" if kind == "info" else f"{kind}_{rest}.png"


def annotation_candidates(stem: str, kind: str) -> list[str]:
    """Stems to look for on import: the release's name, then our older ``<kind>_render_<rest>``."""
    rest = stem.removeprefix("render_")
    return [f"{kind}_{rest}", f"{kind}_{stem}"]


def to_release_rt(world_to_cam_cv: np.ndarray) -> np.ndarray:
    return _CV_TO_GL @ np.asarray(world_to_cam_cv, float)


def from_release_rt(rt: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """OpenCV world-to-camera from a release ``RT`` in either frame: the one that puts ``target`` (the
    world origin by default: the object's neighbourhood in both datasets) in front of the camera."""
    rt = np.asarray(rt, float)
    p = np.zeros(3) if target is None else np.asarray(target, float)
    z = rt[2, :3] @ p + rt[2, 3]
    return _CV_TO_GL @ rt if z < 0 else rt
