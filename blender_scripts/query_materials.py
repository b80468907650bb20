"""SVBRDF materials and UVs of query renders (paper 3.2), with textures prefiltered for the camera.

``build_material`` makes a Principled BSDF fed by the material's maps through UV -> Mapping (tile
scale). Given the render resolution it first reduces each map to the texel density the query
camera resolves (``generation.render.materials.prefilter`` says why and how) and turns maps whose texels
are all equal into constants; without one (``resolution=None``) the files are used as they are.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from brokenchairs.blender_scripts import scene as sc
from brokenchairs.generation.render.materials.library import Material
from brokenchairs.generation.render.materials.prefilter import UV_UNITS_PER_METRE, constant_value, mip_factor, prefilter_maps
from brokenchairs.generation.render.srgb import srgb_to_linear

COLOR_ROLES = ("basecolor",)
FLAT_NORMAL = (0.5, 0.5, 1.0)
SOCKETS = {"basecolor": "Base Color", "roughness": "Roughness", "metallic": "Metallic", "specular": "Specular IOR Level"}


def smart_uv(objects: list[bpy.types.Object]) -> None:
    """Blender's Smart UV Project (as in the paper), then a uniform texel density in world units."""
    for o in bpy.context.view_layer.objects:
        o.select_set(False)
    for o in objects:
        o.select_set(True)
    bpy.context.view_layer.objects.active = objects[0]
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="SELECT")
    bpy.ops.uv.smart_project(angle_limit=math.radians(66), island_margin=0.003, scale_to_bounds=False)
    bpy.ops.object.mode_set(mode="OBJECT")
    for o in objects:
        _uniform_density(o)
        o.select_set(False)


def _uniform_density(obj: bpy.types.Object) -> None:
    me = obj.data
    uv = me.uv_layers.active.data
    n = len(uv)
    coords = np.empty(2 * n, np.float32)
    uv.foreach_get("uv", coords)
    coords = coords.reshape(-1, 2)
    verts = np.empty(3 * len(me.vertices), np.float32)
    me.vertices.foreach_get("co", verts)
    loops = np.empty(n, np.int32)
    me.loops.foreach_get("vertex_index", loops)
    p = verts.reshape(-1, 3)[loops].reshape(-1, 3, 3)
    t = coords.reshape(-1, 3, 2)
    area3 = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum()
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area2 = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum()
    if area2 > 0 and area3 > 0:
        coords *= math.sqrt(area3 / area2) * UV_UNITS_PER_METRE
        uv.foreach_set("uv", coords.ravel())


def load_maps(m: Material) -> dict[str, bpy.types.Image]:
    """role -> Blender image of each map file, with its colour space set."""
    images = {}
    for role, path in m.maps.items():
        img = bpy.data.images.load(path, check_existing=True)
        img.colorspace_settings.name = "sRGB" if role in COLOR_ROLES else "Non-Color"
        images[role] = img
    return images


def image_array(img: bpy.types.Image) -> np.ndarray:
    """(h, w, c) float32 pixels of a Blender image (bottom row first, as Blender stores them)."""
    w, h = img.size
    px = np.empty(w * h * img.channels, np.float32)
    img.pixels.foreach_get(px)
    a = px.reshape(h, w, img.channels)
    return a[..., 0] if img.channels == 1 else a


def _channels(role: str, a: np.ndarray) -> np.ndarray:
    """RGB of a colour or normal map, the first channel of a scalar map (grey maps repeat it)."""
    if role in COLOR_ROLES or role == "normal":
        return a[..., :3] if a.ndim == 3 else np.repeat(a[..., None], 3, -1)
    return a[..., 0] if a.ndim == 3 else a


def array_image(name: str, a: np.ndarray, is_float: bool, color: bool) -> bpy.types.Image:
    """A Blender image (held in memory) with the pixels of ``a`` ((h, w) or (h, w, 3))."""
    h, w = a.shape[:2]
    img = bpy.data.images.new(name, w, h, alpha=True, float_buffer=is_float)
    img.colorspace_settings.name = ("sRGB" if not is_float else "Linear Rec.709") if color else "Non-Color"
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = a[..., :3] if a.ndim == 3 else a[..., None]
    img.pixels.foreach_set(rgba.ravel())
    img.pack()  # keep the pixels with the image: Cycles reads packed images like files
    return img


def prepared_maps(m: Material, resolution: int | None) -> dict[str, bpy.types.Image | tuple[float, ...]]:
    """role -> the image to sample, or a constant value (linear for colour) for a map of equal texels.
    With a ``resolution``, maps are prefiltered for the query camera (module docstring)."""
    images = load_maps(m)
    if resolution is None:
        return dict(images)
    arrays = {role: _channels(role, image_array(img)) for role, img in images.items()}
    factors = {role: mip_factor(min(img.size), m.tile_scale, resolution) for role, img in images.items()}
    encoded = not images["basecolor"].is_float if "basecolor" in images else True
    out: dict[str, bpy.types.Image | tuple[float, ...]] = {}
    if any(f > 1 for f in factors.values()):
        reduced = prefilter_maps(arrays, factors, color_encoded=encoded)
        factor = max(factors.values())
        for role, a in reduced.items():
            is_float = images[role].is_float if role in images else False
            out[role] = array_image(f"{m.name}.{role}@{factor}", a, is_float, role in COLOR_ROLES)
    else:
        reduced = arrays
        out.update(images)
    for role, a in reduced.items():
        value = constant_value(a)
        if value is None:
            continue
        if role == "normal":
            if np.allclose(value, FLAT_NORMAL, atol=1.5 / 255):
                out.pop(role)
            continue
        if role in COLOR_ROLES and encoded:
            value = tuple(float(v) for v in srgb_to_linear(np.asarray(value)))
        out[role] = value
    for role, img in images.items():  # full-resolution images nobody samples
        if out.get(role) is not img and img.users == 0:
            bpy.data.images.remove(img)
    return out


def build_material(m: Material, resolution: int | None = None) -> bpy.types.Material:
    """Principled BSDF fed by the SVBRDF maps through UV -> Mapping(tile scale); with a
    ``resolution``, the maps are prefiltered for a query camera of that size (``prepared_maps``)."""
    maps = prepared_maps(m, resolution)
    mat = bpy.data.materials.new(m.name if resolution is None else f"{m.name}@{resolution}")
    nt = sc.node_tree(mat)
    bsdf = nt.nodes.get("Principled BSDF")
    coord = nt.nodes.new("ShaderNodeTexCoord")
    mapping = nt.nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (m.tile_scale,) * 3
    nt.links.new(coord.outputs["UV"], mapping.inputs["Vector"])

    def image(img: bpy.types.Image):
        node = nt.nodes.new("ShaderNodeTexImage")
        node.image = img
        nt.links.new(mapping.outputs["Vector"], node.inputs["Vector"])
        return node

    roles = ["basecolor", "roughness"] + (["metallic"] if "metallic" in maps else ["specular"])
    for role in roles:
        if role not in maps:
            continue
        source = maps[role]
        socket = bsdf.inputs[SOCKETS[role]]
        if isinstance(source, tuple):
            socket.default_value = (*source[:3], 1.0) if role in COLOR_ROLES else source[0]
        else:
            nt.links.new(image(source).outputs["Color"], socket)
    if "normal" in maps:
        color_out = image(maps["normal"]).outputs["Color"]
        nmap = nt.nodes.new("ShaderNodeNormalMap")
        if m.normal_dx:  # DirectX: green points down; flip it to OpenGL
            sep = nt.nodes.new("ShaderNodeSeparateColor")
            inv = nt.nodes.new("ShaderNodeMath")
            inv.operation = "SUBTRACT"
            inv.inputs[0].default_value = 1.0
            comb = nt.nodes.new("ShaderNodeCombineColor")
            nt.links.new(color_out, sep.inputs["Color"])
            nt.links.new(sep.outputs["Green"], inv.inputs[1])
            nt.links.new(sep.outputs["Red"], comb.inputs["Red"])
            nt.links.new(inv.outputs["Value"], comb.inputs["Green"])
            nt.links.new(sep.outputs["Blue"], comb.inputs["Blue"])
            color_out = comb.outputs["Color"]
        nt.links.new(color_out, nmap.inputs["Color"])
        nt.links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
    return mat
