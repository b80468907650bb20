"""Photo-real query scenes (paper 3.2): SVBRDF materials per part, shadow-catcher ground, lights.

A query is rendered in two passes (``render_region`` explains why): the ground at 1/4 resolution,
then the object's rectangle composited over it in linear light and denoised (``QueryCompositor``).

One ``QueryRenderer`` per worker process holds the Cycles scene (the renders that only tests and
benchmarks make of it are in ``query_probes``); materials (``query_materials``:
maps prefiltered for the query camera unless ``prefilter_textures`` is off) are built once per
worker and cached by name. A shape's parts become objects whose ``pass_index`` is fixed by the
reference shape (position + 1), so the object-index pass gives part masks; an anomalous variant
replaces only the objects of the changed part, keeping its index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import bpy
import numpy as np

from brokenchairs.blender_scripts import scene as sc
from brokenchairs.blender_scripts.passes import PassReader, clean_depth
from brokenchairs.blender_scripts.query_compositor import QueryCompositor
from brokenchairs.blender_scripts.query_materials import build_material, smart_uv
from brokenchairs.generation.render.coverage import coverage as silhouette_coverage
from brokenchairs.generation.render.coverage import merged_mesh, triangles_2d
from brokenchairs.generation.render.materials.assign import group_of, label_groups
from brokenchairs.generation.render.materials.library import Material
from brokenchairs.generation.render.render_region import assemble, hull_points, render_region, upsample_ground
from brokenchairs.generation.render.render_settings import GROUND_SAMPLES, GROUND_SCALE, LIGHT_PRESETS, OBJECT_SAMPLES
from brokenchairs.generation.shapes.shape import Part

# Cycles' blue-noise sample pattern: +0.3 dB median chair PSNR after the denoiser over the tabulated
# Sobol pattern of bpy 5.0's factory scene, at the same cost (perf/bench_render.py), so 11 spp did
# what 12 had done (11 was the default then; since the exact silhouette coverage it is 8,
# ``render_settings.OBJECT_SAMPLES``). The first sample of each pixel is the same whatever the sample count, so the
# masks-only renders' object index still equals the full render's (a test checks). Its samples
# depend on the largest sample count the Cycles session has rendered so far, so each renderer
# first renders one pixel at its largest count (``prime``): every render of a worker, the first
# included, then samples the same way, and a resumed run equals an uninterrupted one (a test).
SAMPLING_PATTERN = "BLUE_NOISE"


class QueryRenderer:
    def __init__(self, resolution: int, samples: int = OBJECT_SAMPLES, device: str = "cpu", threads: int | None = None,
                 denoise: bool = True, ground_samples: int = GROUND_SAMPLES, prefilter_textures: bool = True,
                 exact_coverage: bool = True):
        self.resolution = resolution
        sc.init_blender(threads)
        scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        scene.render.film_transparent = True
        scene.render.use_persistent_data = True  # keep the BVH and shaders while only the camera moves
        scene.render.dither_intensity = 0.0  # no noise added when quantising to 8 bits
        scene.view_settings.view_transform = "Standard"
        cyc = scene.cycles
        cyc.samples = samples
        cyc.use_adaptive_sampling = False
        cyc.max_bounces, cyc.diffuse_bounces, cyc.glossy_bounces = 4, 2, 2
        cyc.transmission_bounces = cyc.volume_bounces = cyc.transparent_max_bounces = 2
        cyc.caustics_reflective = cyc.caustics_refractive = False
        cyc.use_denoising = False  # the compositor denoises, after compositing (QueryCompositor)
        cyc.seed = 0
        cyc.sampling_pattern = SAMPLING_PATTERN
        # Spatial splits in the BVH build: the same hits (bar an occasional tie between coincident
        # triangles), ~5% less time per object pass on chairs' long thin bars, and no dearer to build
        cyc.debug_use_spatial_splits = True
        self.samples, self.denoise, self.ground_samples = samples, denoise, ground_samples
        set_device(device)
        sc.set_resolution(resolution, resolution)
        self._ground()
        self.passes = PassReader(("depth", "index", "alpha"))
        self.compositor = QueryCompositor(self.passes.tree, self.passes.layers)
        self._hull: np.ndarray | None = None
        self._geometry: tuple[np.ndarray, np.ndarray] | None = None  # every part's (vertices, faces), one array each
        # the object pass's silhouettes from generation.render.coverage instead of the samples' alpha (query_compositor)
        self.exact_coverage = exact_coverage
        self.prefilter_textures = prefilter_textures  # maps reduced to what the camera resolves (query_materials)
        self._materials: dict[tuple[str, bool], bpy.types.Material] = {}
        self._objects: dict[int, bpy.types.Object] = {}  # node id -> object
        self._mesh_of: dict[int, object] = {}  # node id -> the trimesh it was built from
        self._lights: list[bpy.types.Object] = []
        self._groups = label_groups()
        self._unshaded = _black_emission()  # the material of masks-only renders
        self._prime_samples = max(samples, ground_samples)
        self.prime(self._prime_samples)

    def new_session(self) -> None:
        """A fresh Cycles session for the scene as it is now: call it once a unit's scene is set.
        With persistent data Cycles updates its scene in place, and the order it keeps objects in
        (hence its BVH, hence which of two coincident triangles a ray reports) followed every
        object that earlier units created and deleted: a unit's image depended on which units its
        worker had rendered before, which the scheduler decides, differently on a busy machine
        (13 levels on one pixel before the denoiser, up to 9 on ~20 after it, in 1 of 138 images).
        With a session per unit a unit's bytes depend on the unit alone; inside the unit the kept
        session still spares re-syncs while only the camera moves."""
        rd = bpy.context.scene.render
        rd.use_persistent_data = False  # the property's update frees the kept session
        rd.use_persistent_data = True
        self.prime(self._prime_samples)

    def prime(self, samples: int) -> None:
        """One pixel of the empty scene at ``samples`` spp: Cycles' blue-noise pattern is set by the
        largest count rendered so far, so renders at up to ``samples`` spp sample as in any other
        renderer primed so (module docstring). Rendering more samples later (a higher ``self.samples``,
        a ``query_probes.render_single_pass`` reference) changes the images after it."""
        r = self.resolution
        K = np.array([[r, 0, r / 2], [0, r, r / 2], [0, 0, 1]], float)
        self.render_pass(K, np.eye(4), r, (0, 0, 1, 1), objects=False, samples=samples, denoise=False, passes=(), rgb=False)

    # --- scene ------------------------------------------------------------------------------
    def _ground(self) -> None:
        me = bpy.data.meshes.new("ground")
        s = 20.0
        me.from_pydata([(-s, -s, 0), (s, -s, 0), (s, s, 0), (-s, s, 0)], [], [(0, 1, 2, 3)])
        ground = bpy.data.objects.new("ground", me)
        bpy.context.scene.collection.objects.link(ground)
        ground.is_shadow_catcher = True
        ground.pass_index = 0
        self.ground = ground

    def set_light(self, light_id: int) -> None:
        preset = LIGHT_PRESETS[light_id % len(LIGHT_PRESETS)]
        for obj in self._lights:
            data = obj.data
            bpy.data.objects.remove(obj, do_unlink=True)
            bpy.data.lights.remove(data)  # no orphans: the next lights get the same names
        self._lights = []
        nt = sc.node_tree(bpy.context.scene.world)
        bg = nt.nodes.get("Background") or nt.nodes.new("ShaderNodeBackground")
        bg.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
        bg.inputs["Strength"].default_value = preset["world"]
        out = nt.nodes.get("World Output") or nt.nodes.new("ShaderNodeOutputWorld")
        if not out.inputs["Surface"].is_linked:
            nt.links.new(bg.outputs["Background"], out.inputs["Surface"])
        for i, (kind, loc, energy, size) in enumerate(preset["lights"]):
            data = bpy.data.lights.new(f"light{i}", kind)
            data.energy = energy
            if kind == "AREA":
                data.size = size
            else:
                data.angle = math.radians(size)
            obj = bpy.data.objects.new(f"light{i}", data)
            obj.location = loc
            direction = -np.asarray(loc, float)  # aim at the origin
            obj.rotation_euler = _track_euler(direction)
            bpy.context.scene.collection.objects.link(obj)
            self._lights.append(obj)

    def set_parts(self, parts: Sequence[Part], index_of: dict[int, int], assignment: dict[str, str],
                  library: dict[str, Material]) -> None:
        """Make the scene hold exactly ``parts``; unchanged objects (same mesh) are kept."""
        wanted = {p.node_id: p for p in parts}
        for node_id in list(self._objects):
            obj = self._objects[node_id]
            if node_id not in wanted or self._mesh_of[node_id] is not wanted[node_id].mesh:
                data = obj.data
                bpy.data.objects.remove(obj, do_unlink=True)
                bpy.data.meshes.remove(data)
                del self._objects[node_id], self._mesh_of[node_id]
        new = []
        for node_id, part in wanted.items():
            if node_id in self._objects:
                continue
            obj = sc.part_object(part)
            obj.pass_index = index_of[node_id]
            self._mesh_of[node_id] = part.mesh
            obj["label"] = part.label
            self._objects[node_id] = obj
            new.append(obj)
        if new:
            smart_uv(new)
        self._geometry = merged_mesh(parts) if parts else None
        self._hull = hull_points(self._geometry[0]) if parts else None
        for node_id, obj in self._objects.items():
            mat = library[assignment[group_of(obj["label"], self._groups)]]
            self._assign(obj, mat)

    def clear(self) -> None:
        for obj in self._objects.values():
            data = obj.data
            bpy.data.objects.remove(obj, do_unlink=True)
            bpy.data.meshes.remove(data)
        self._objects, self._mesh_of, self._hull, self._geometry = {}, {}, None, None

    def _assign(self, obj: bpy.types.Object, material: Material) -> None:
        key = (material.name, self.prefilter_textures)
        mat = self._materials.get(key)
        if mat is None:
            mat = self._materials[key] = build_material(material, self.resolution if self.prefilter_textures else None)
        if obj.data.materials:
            obj.data.materials[0] = mat
        else:
            obj.data.materials.append(mat)

    # --- rendering ------------------------------------------------------------------------------
    def region(self, K: np.ndarray, world_to_cam: np.ndarray) -> tuple[int, int, int, int]:
        """The object's rectangle (x0, y0, x1, y1) in this view (``render_region``)."""
        if self._hull is None:
            raise RuntimeError("no parts in the scene")
        return render_region(self._hull, K, world_to_cam, self.resolution)

    def render_views(self, K: np.ndarray, cams: Sequence[np.ndarray], masks_only: bool = False) -> list[dict[str, np.ndarray]]:
        """RGB (uint8), object index and depth of each view of the scene, in two passes (module docstring).

        The ground passes of all ``cams`` come first, then their object passes: switching between
        the two (what the camera sees) makes Cycles re-sync the scene and rebuild its BVH (~30 ms a
        switch on a 45k-triangle PartNet chair), so a batch pays that twice, not twice per view.
        The images are those of one render per view (``query_probes.render_view``; a test compares them).
        Index and depth come from the object pass and are exact (every object pixel lies inside
        the rectangle). ``masks_only``: only the object index, from the object pass alone at 1
        sample, no denoiser, no ground, no image or depth files, every object in one black
        emission material (no textures, light sampling or bounces; Cycles writes the index from
        the first camera hit whatever the material) -- for quality control and ``mask_old``.
        """
        r = self.resolution
        regions = [self.region(K, c) for c in cams]
        if masks_only:
            return [self._masks(K, c, region) for c, region in zip(cams, regions)]
        small = r // GROUND_SCALE
        scale = np.array([[1 / GROUND_SCALE] * 3] * 2 + [[0, 0, 1]])
        grounds = [upsample_ground(self.render_pass(K * scale, c, small, (0, 0, small, small), objects=False,
                                              samples=self.ground_samples, denoise=self.denoise, passes=())[0], r)
                   for c in cams]
        out = []
        for c, region, ground in zip(cams, regions, grounds):
            x0, y0, x1, y1 = region
            cov = silhouette_coverage(triangles_2d(*self._geometry, K, c), region) if self.exact_coverage else None
            rgb, passes = self.render_pass(K, c, r, region, objects=True, samples=self.samples, denoise=self.denoise,
                                     background=ground[y0:y1, x0:x1], coverage=cov)
            index = np.zeros((r, r), np.int32)
            depth = np.zeros((r, r), np.float32)
            index[y0:y1, x0:x1] = np.rint(passes["index"]).astype(np.int32)
            depth[y0:y1, x0:x1] = clean_depth(passes["depth"])
            out.append({"rgb": assemble(ground, region, rgb, index[y0:y1, x0:x1] > 0), "index": index, "depth": depth})
        return out

    def _masks(self, K: np.ndarray, world_to_cam: np.ndarray, region: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
        r = self.resolution
        x0, y0, x1, y1 = region
        _, passes = self.render_pass(K, world_to_cam, r, region, objects=True, samples=1, denoise=False, shaded=False,
                               passes=("index",), rgb=False)
        index = np.zeros((r, r), np.int32)
        index[y0:y1, x0:x1] = np.rint(passes["index"]).astype(np.int32)
        return {"index": index}

    def render_pass(self, K, world_to_cam, size: int, region, objects: bool, samples: int, denoise: bool,
              background: np.ndarray | None = None, ground_visible: bool | None = None, shaded: bool = True,
              passes: tuple[str, ...] = ("depth", "index"), rgb: bool = True,
              coverage: np.ndarray | None = None) -> tuple[np.ndarray | None, dict]:
        """One Cycles render of ``region`` of a size x size frame: (RGB uint8 crop or None, passes crop).
        ``objects``: the chair is seen by the camera (else only its shadows on the ground); the
        ground is seen by the camera only when the chair is not, unless ``ground_visible``;
        ``shaded=False``: every object in the black emission material (masks-only renders);
        ``passes``: the passes to write and read; ``rgb=False``: no image file written or read;
        ``coverage``: the object's exact coverage of ``region`` in place of the render's alpha."""
        # Only what differs is set: assigning even the same value tags the datablock, and Cycles then
        # re-syncs it (material_override: every object, ~25 ms on a 45k-triangle chair).
        _set(bpy.context.scene.view_layers[0], "material_override", None if shaded else self._unshaded)
        for obj in self._objects.values():
            _set(obj, "visible_camera", objects)
        _set(self.ground, "visible_camera", (not objects) if ground_visible is None else ground_visible)
        _set(bpy.context.scene.cycles, "samples", samples)
        self.compositor.set_denoise(denoise)
        self.compositor.set_background(background)
        self.compositor.set_coverage(coverage)
        self.passes.select(passes)
        sc.set_camera(K, world_to_cam, size, size)
        x0, y0, x1, y1 = region
        rd = bpy.context.scene.render
        full = (x0, y0, x1, y1) == (0, 0, size, size)
        _set(rd, "use_border", not full)
        _set(rd, "use_crop_to_border", not full)
        if not full:
            # Blender's border is fractional and bottom-up; nudge inside each pixel edge against rounding
            rd.border_min_x, rd.border_max_x = (x0 + 1e-3) / size, (x1 + 1e-3) / size
            rd.border_min_y, rd.border_max_y = (size - y1 + 1e-3) / size, (size - y0 + 1e-3) / size
        if rgb:
            image = sc.render_rgba()[..., :3]
        else:
            sc.render(write_still=False)
            image = None
        out = self.passes.read()
        got = image.shape[:2] if image is not None else next(iter(out.values())).shape if out else None
        if got is not None and got != (y1 - y0, x1 - x0):
            raise RuntimeError(f"render border gave {got}, expected {(y1 - y0, x1 - x0)}")
        return image, out


def _set(block, name: str, value) -> None:
    """``block.name = value`` unless it already is (``QueryRenderer.render_pass``)."""
    if getattr(block, name) != value:
        setattr(block, name, value)


def _black_emission() -> bpy.types.Material:
    mat = bpy.data.materials.new("brokenchairs_unshaded")
    nt = sc.node_tree(mat)
    for node in list(nt.nodes):
        if node.type != "OUTPUT_MATERIAL":
            nt.nodes.remove(node)
    out = next(n for n in nt.nodes if n.type == "OUTPUT_MATERIAL")
    emission = nt.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 0.0
    nt.links.new(emission.outputs["Emission"], out.inputs["Surface"])
    return mat


def _track_euler(direction: np.ndarray):
    from mathutils import Vector

    return Vector(direction).to_track_quat("-Z", "Y").to_euler()


def set_device(device: str) -> None:
    scene = bpy.context.scene
    if device == "cpu":
        scene.cycles.device = "CPU"
        return
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA"):
        try:
            prefs.compute_device_type = backend
        except TypeError:  # this Blender build lacks the backend
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend
            scene.cycles.device = "GPU"
            return
    raise RuntimeError("--device gpu: no CUDA/OptiX device found by Cycles")
