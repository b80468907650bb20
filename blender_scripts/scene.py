"""Blender scene building blocks: the only module family that imports bpy.

A worker imports bpy once (``init_blender``), then for every shape calls ``clear_objects`` and
``add_part_objects``; cameras are set from OpenCV K / world_to_cam with ``set_camera``.
Blender's camera looks down its local -z with +y up; OpenCV looks down +z with +y down, so
cam_to_world_blender = inverse(world_to_cam) @ diag(1, -1, -1, 1).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Sequence

import bpy
import numpy as np
from PIL import Image

from brokenchairs.generation.shapes.shape import Part, single_sided_faces

_CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0, 1.0])
SENSOR_WIDTH_MM = 36.0


def init_blender(threads: int | None = None) -> None:
    """Start from an empty factory scene (call once per process)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    if threads:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads
    cam_data = bpy.data.cameras.new("camera")
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    if scene.world is None:
        scene.world = bpy.data.worlds.new("world")


def node_tree(block):
    """The node tree of a material or world (Blender 5 gives one by default; ``use_nodes`` is deprecated)."""
    if block.node_tree is None:
        block.use_nodes = True
    return block.node_tree


def clear_objects(keep: Sequence[str] = ("camera",)) -> None:
    """Remove every object (and its mesh data) except those named in ``keep``."""
    for obj in list(bpy.data.objects):
        if obj.name not in keep:
            data = obj.data
            bpy.data.objects.remove(obj, do_unlink=True)
            if isinstance(data, bpy.types.Mesh) and data.users == 0:
                bpy.data.meshes.remove(data)
    for mesh in list(bpy.data.meshes):
        if mesh.users == 0:
            bpy.data.meshes.remove(mesh)


def mesh_object(name: str, vertices: np.ndarray, faces: np.ndarray) -> bpy.types.Object:
    """A linked mesh object built with foreach_set (fast, no Python lists)."""
    me = bpy.data.meshes.new(name)
    v = np.ascontiguousarray(vertices, dtype=np.float32).ravel()
    f = np.ascontiguousarray(faces, dtype=np.int32)
    me.vertices.add(len(vertices))
    me.vertices.foreach_set("co", v)
    me.loops.add(f.size)
    me.loops.foreach_set("vertex_index", f.ravel())
    me.polygons.add(len(f))
    me.polygons.foreach_set("loop_start", np.arange(0, f.size, 3, dtype=np.int32))
    me.update(calc_edges=True)
    obj = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def orient_faces(obj: bpy.types.Object) -> None:
    """Make face normals consistent and outward (PartNet parts are soups with mixed winding).

    Coincident vertices are welded first so the soup becomes connected; positions do not move.
    """
    import bmesh

    bm = bmesh.new()
    bm.from_mesh(obj.data)
    bmesh.ops.remove_doubles(bm, verts=bm.verts, dist=1e-7)
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
    bm.to_mesh(obj.data)
    bm.free()


def part_object(part: Part, fix_normals: bool = True) -> bpy.types.Object:
    """The Blender object of one part: one copy of each double-sided triangle
    (``single_sided_faces``), faces oriented outward when the mesh is not watertight."""
    mesh = part.mesh
    obj = mesh_object(part.name, mesh.vertices, single_sided_faces(mesh.vertices, mesh.faces))
    if fix_normals and not mesh.is_watertight:
        orient_faces(obj)
    return obj


def add_part_objects(parts: Sequence[Part], fix_normals: bool = True) -> list[bpy.types.Object]:
    """One object per part, named ``<node id>_<label>``, with pass_index = position + 1."""
    objs = []
    for i, part in enumerate(parts):
        obj = part_object(part, fix_normals)
        obj.pass_index = i + 1
        obj["part_path"] = part.path_str
        objs.append(obj)
    return objs


def set_resolution(width: int, height: int) -> None:
    r = bpy.context.scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0


def set_camera(K: np.ndarray, world_to_cam: np.ndarray, width: int, height: int) -> None:
    """Place the scene camera so Blender renders exactly the OpenCV camera (K, world_to_cam)."""
    if abs(K[0, 0] - K[1, 1]) > 1e-6 * K[0, 0]:
        raise ValueError("only square pixels (fx == fy) are supported")
    cam = bpy.context.scene.camera
    cam.matrix_world = _to_matrix(np.linalg.inv(world_to_cam) @ _CV_TO_BLENDER)
    data = cam.data
    data.type = "PERSP"
    data.sensor_fit = "HORIZONTAL" if width >= height else "VERTICAL"
    data.sensor_width = data.sensor_height = SENSOR_WIDTH_MM
    size = max(width, height)
    data.lens = K[0, 0] * SENSOR_WIDTH_MM / size
    data.shift_x = -(K[0, 2] - width / 2) / size
    data.shift_y = (K[1, 2] - height / 2) / size
    data.clip_start, data.clip_end = 0.01, 100.0
    set_resolution(width, height)


def _to_matrix(m: np.ndarray):
    from mathutils import Matrix

    return Matrix([list(map(float, row)) for row in m])


@contextlib.contextmanager
def silenced_output():
    """Blender prints progress lines (fd 1) and GPU-context probes (fd 2, "EGL Error ...") on
    renders without a display; none are actionable, and real failures still raise."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def render(write_still: bool = True) -> None:
    """Render the scene camera (results go to the configured outputs; ``write_still``: also the
    composite image, to ``scene.render.filepath``)."""
    with silenced_output():
        bpy.ops.render.render(write_still=write_still)


@functools.cache  # asked on every render
def scratch_dir() -> str | None:
    """Where render results make their round trip through files: /dev/shm (memory) where there is
    one, else the system's temp folder (``None`` for ``tempfile``)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def render_rgba() -> np.ndarray:
    """Render the scene camera to an (H,W,4) uint8 array (via a temporary PNG)."""
    scene = bpy.context.scene
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.compression = 0  # a temporary file: zlib time buys nothing
    fd, tmp = tempfile.mkstemp(suffix=".png", prefix="brokenchairs-", dir=scratch_dir())
    os.close(fd)
    try:
        scene.render.filepath = tmp
        render()
        return np.asarray(Image.open(tmp).convert("RGBA"))
    finally:
        os.unlink(tmp)


def over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA render onto a white background: (H,W,3) uint8."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1 - a)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def setup_workbench(color_type: str = "OBJECT", shadows: bool = True, aa_samples: str = "8") -> None:
    """Workbench, studio light, transparent film (composited onto white by the caller)."""
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.film_transparent = True
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = color_type
    shading.show_shadows = shadows
    shading.show_cavity = True
    shading.cavity_type = "WORLD"
    scene.display.render_aa = aa_samples
    scene.view_settings.view_transform = "Standard"
