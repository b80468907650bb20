"""Material folders: SVBRDF maps + ``material.json``; readers for common external namings.

Our layout: ``basecolor.png`` (sRGB), ``roughness.png``, ``metallic.png`` (or ``specular.png``),
``normal.png`` (OpenGL tangent space) and ``material.json`` = {name, class, tile_scale}.
Also read, so ``--materials DIR`` can point at a real library:
- PhotoShape / Aittala: ``map_diffuse``, ``map_specular``, ``map_normal`` (+ ``map_roughness``);
- AmbientCG / PolyHaven: ``*_Color``, ``*_Roughness``, ``*_NormalGL`` / ``*_NormalDX``,
  ``*_Metalness`` (and PolyHaven's ``*_diff_*``, ``*_rough_*``, ``*_nor_gl_*``, ``*_nor_dx_*``,
  ``*_metal_*``).
Without ``material.json`` the class is guessed from words in the folder name (``CLASS_KEYWORDS``:
oak -> wood, steel -> metal, ...; else plastic) and the tile scale defaults to 2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from brokenchairs.errors import InputError
from brokenchairs.generation.render.materials.synth import CLASSES, SVBRDF, synth_material
from brokenchairs.shared_folder import write_atomic_folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp")
ROLES = ("basecolor", "roughness", "metallic", "specular", "normal")
PATTERNS = {  # role -> regexes on the file stem (case-insensitive), first match wins
    "basecolor": [r"^basecolor$", r"^map_diffuse$", r"_color$", r"_basecolor$", r"_albedo$", r"_diff(_|$)", r"^diffuse$"],
    "roughness": [r"^roughness$", r"^map_roughness$", r"_roughness$", r"_rough(_|$)"],
    "metallic": [r"^metallic$", r"_metalness$", r"_metallic$", r"_metal(_|$)"],
    "specular": [r"^specular$", r"^map_specular$", r"_specular$", r"_spec(_|$)"],
    "normal": [r"^normal$", r"^map_normal$", r"_normalgl$", r"_normaldx$", r"_nor_gl(_|$)", r"_nor_dx(_|$)", r"_normal$"],
}


CLASS_KEYWORDS = {  # folder-name words that reveal a class when material.json is absent
    "wood": ("wood", "oak", "walnut", "pine", "maple", "birch", "cherry", "teak", "beech", "plank", "veneer", "bamboo"),
    "leather": ("leather", "suede"),
    "fabric": ("fabric", "cloth", "textile", "linen", "cotton", "wool", "velvet", "denim", "carpet", "upholstery"),
    "metal": ("metal", "steel", "iron", "alumin", "chrome", "brass", "copper", "gold", "silver", "bronze"),
    "plastic": ("plastic", "rubber", "acrylic", "vinyl", "polymer"),
}


def guess_class(name: str) -> str:
    low = name.lower()
    return next((c for c, words in CLASS_KEYWORDS.items() if any(w in low for w in words)), "plastic")


@dataclass(frozen=True)
class Material:
    name: str
    cls: str
    tile_scale: float
    folder: str
    maps: dict  # role -> absolute path
    normal_dx: bool = False  # DirectX normal map: green channel points down

    @property
    def material_id(self) -> str:
        return self.name


def _find_maps(folder: Path) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    maps: dict[str, Path] = {}
    for role in ROLES:
        for pattern in PATTERNS[role]:
            hit = next((f for f in files if re.search(pattern, f.stem.lower())), None)
            if hit is not None:
                maps[role] = hit
                break
    return maps


def _check_image(path: Path) -> None:
    if path.suffix.lower() == ".exr":
        return  # Blender reads EXR; PIL cannot check it
    try:
        with Image.open(path) as im:
            im.verify()
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(path, f"unreadable material map ({exc.__class__.__name__})") from exc


def load_material(folder: str | Path) -> Material:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "material folder does not exist")
    meta_path = folder / "material.json"
    meta: dict = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(meta_path, f"not valid JSON ({exc})") from exc
    maps = _find_maps(folder)
    if "basecolor" not in maps:
        raise InputError(folder, "no base colour map (basecolor.png, map_diffuse.*, *_Color.* or *_diff_*)")
    for path in maps.values():
        _check_image(path)
    cls = meta.get("class") or guess_class(folder.name)
    if cls not in CLASSES:
        raise InputError(meta_path, f"class {cls!r} is not one of {', '.join(CLASSES)}")
    normal = maps.get("normal")
    return Material(
        name=str(meta.get("name", folder.name)), cls=cls, tile_scale=float(meta.get("tile_scale", 2.0)),
        folder=str(folder.resolve()), maps={k: str(v.resolve()) for k, v in maps.items()},
        normal_dx=bool(normal and re.search(r"(normaldx|nor_dx)", normal.stem.lower())),
    )


def load_library(root: str | Path) -> list[Material]:
    """Every material folder under ``root`` (sorted by name); ``root`` may itself be one."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "material library folder does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir()) or [root]
    materials = [load_material(f) for f in folders]
    names = [m.name for m in materials]
    if len(set(names)) != len(names):
        raise InputError(root, "material names are not unique")
    return materials


def _png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(np.clip(arr * 255 + 0.5, 0, 255).astype(np.uint8)).save(path, optimize=False)


def write_material(m: SVBRDF, folder: Path) -> Path:
    folder = Path(folder)
    with write_atomic_folder(folder) as tmp:
        _png(m.basecolor, tmp / "basecolor.png")
        _png(m.roughness, tmp / "roughness.png")
        _png(m.metallic, tmp / "metallic.png")
        _png(m.normal, tmp / "normal.png")
        (tmp / "material.json").write_text(json.dumps({"name": m.name, "class": m.cls, "tile_scale": m.tile_scale},
                                                      indent=1, sort_keys=True))
    return folder


def synth_library(count: int, seed: int, out: Path, size: int = 512):
    """Write ``count`` procedural materials (classes cycle) under ``out``; yields each folder."""
    for i in range(count):
        m = synth_material(seed, i, size)
        yield write_material(m, Path(out) / m.name)
