"""A unit's scene and quality control in plain Python (generation/units), without Blender.

The renderer here is a real one of another kind: it projects each part's vertices with the
unit's cameras (``dataset.cameras.project``) and fills the part's projected bounding box with its
object index, front to back by depth. It needs the anomaly engine (the render extra), not bpy.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from brokenchairs.dataset.cameras import project
from brokenchairs.generation.anomalies import DonorPool
from brokenchairs.generation.render.materials.library import load_library, synth_library
from brokenchairs.generation.shapes.sources import procedural_refs
from brokenchairs.generation.units.procedure import render_unit, run_unit
from brokenchairs.generation.units.quality import QCConfig
from brokenchairs.generation.units.scene import describe_unit
from brokenchairs.generation.units.tasks import QuerySettings, Unit

RES = 64


class BoxRenderer:
    """Index pass = projected part boxes, nearest part on top; rgb = the index times 20; records calls."""

    def __init__(self, resolution: int):
        self.res = resolution
        self.calls: list[tuple] = []
        self.parts, self.index_of, self.light = [], {}, None

    def new_session(self) -> None:
        self.calls.append(("session",))

    def set_light(self, light_id: int) -> None:
        self.light = light_id
        self.calls.append(("light", light_id))

    def set_parts(self, parts, index_of, assignment, materials) -> None:
        self.parts, self.index_of = list(parts), dict(index_of)
        self.calls.append(("parts", tuple(p.node_id for p in parts), tuple(sorted(assignment.items()))))

    def render_views(self, K, cams, masks_only=False):
        self.calls.append(("render", masks_only, K.copy(), [c.copy() for c in cams], self.light))
        out = []
        for cam in cams:
            index = np.zeros((self.res, self.res), np.int32)
            depth = np.zeros((self.res, self.res), np.float32)
            boxes = []
            for part in self.parts:
                uv, z = project(np.asarray(part.mesh.vertices), K, cam)
                x0, y0 = np.floor(uv.min(0)).astype(int)
                x1, y1 = np.ceil(uv.max(0)).astype(int)
                boxes.append((float(z.mean()), max(x0, 0), max(y0, 0), min(x1, self.res), min(y1, self.res),
                              self.index_of[part.node_id]))
            for zm, x0, y0, x1, y1, k in sorted(boxes, reverse=True):  # far to near: the nearest stays
                index[y0:y1, x0:x1] = k
                depth[y0:y1, x0:x1] = zm
            view = {"index": index}
            if not masks_only:
                view.update(rgb=np.repeat((index * 20 % 256).astype(np.uint8)[..., None], 3, -1), depth=depth)
            out.append(view)
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    lib = tmp_path_factory.mktemp("materials")
    list(synth_library(5, 0, lib, size=16))  # a generator: one folder per material
    refs = procedural_refs(4, 3)
    settings = QuerySettings(resolution=RES, samples=1, denoise=False, fov_deg=25.0, twins=True, min_anomaly_pixels=4,
                             materials=str(lib))
    return refs, settings, load_library(lib), DonorPool(refs)


def test_scene_depends_on_the_unit_alone(world):
    refs, settings, library, pool = world
    unit = Unit("u/position", refs[0], "position", seed=11, views=4)
    a = describe_unit(unit, settings, library, pool, Counter())
    describe_unit(Unit("other", refs[1], "missing", seed=5, views=3), settings, library, pool, Counter())
    b = describe_unit(unit, settings, library, pool, Counter())
    assert a is not None and b is not None
    assert a.assignment == b.assignment and a.light_id == b.light_id
    assert [(v.azimuth, v.elevation) for v in a.views] == [(v.azimuth, v.elevation) for v in b.views]
    assert all(np.array_equal(x, y) for x, y in zip(a.cams, b.cams))
    assert a.record.to_json() == b.record.to_json()
    # the changed part keeps its pass value in the variant: masks of old and new part compare
    assert a.changed_index == a.part_index[a.record.part_id] > 0
    assert len({(v.azimuth, v.elevation) for v in a.views}) == 4  # distinct views, the paper's law


def test_twins_share_camera_materials_and_light(world):
    refs, settings, library, pool = world
    renderer = BoxRenderer(RES)
    counters = Counter()
    for s in range(6):
        scene = describe_unit(Unit(f"u{s}", refs[s % 4], "position", seed=100 + s, views=4), settings, library, pool, counters)
        if scene is None:
            continue
        renderer.calls.clear()
        rows = render_unit(scene, renderer, {m.name: m for m in library}, True, QCConfig(min_pixels_at_resolution=4),
                           [0.0], counters)
        if not rows:
            continue
        renders = [c for c in renderer.calls if c[0] == "render"]
        parts = [c for c in renderer.calls if c[0] == "parts"]
        # masks of the normal, masks of the variant, full variant, full twin: one K, one light
        assert [r[1] for r in renders] == [True, True, False, False]
        assert all(np.array_equal(r[2], scene.K) and r[4] == scene.light_id for r in renders)
        assert len({p[2] for p in parts}) == 1  # one material assignment for shape, variant and twin
        full_variant, full_twin = renders[2], renders[3]
        assert all(np.array_equal(x, y) for x, y in zip(full_variant[3], full_twin[3]))  # same cameras
        by_id = {s.sample_id: (s, extra) for s, extra in rows}
        for sample, extra in rows:
            twin = by_id[extra["twin"]][0]
            assert {sample.anomaly_type, twin.anomaly_type} == {"position", "normal"}
            assert np.array_equal(sample.world_to_cam, twin.world_to_cam) and sample.light_id == twin.light_id
            assert sample.material_id == twin.material_id == scene.material_id
        return
    pytest.fail(f"no position unit kept a view: {counters}")


def test_quality_control_keeps_only_visible_changes(world):
    refs, settings, library, pool = world
    renderer = BoxRenderer(RES)
    counters = Counter()
    kept = []
    for s in range(8):
        kept += run_unit(Unit(f"m{s}", refs[s % 4], "missing", seed=200 + s, views=5), renderer, settings, library, pool,
                         [0.0], counters)
    anomalous = [x for x, _ in kept if x.label]
    assert anomalous, counters
    for x in anomalous:
        region = x.mask_new | x.mask_old
        assert region.sum() >= 4  # min_anomaly_pixels at the rendered resolution
        assert not x.mask_new.any()  # a missing part covers no pixel of the anomalous image
        ys, xs = np.nonzero(region)
        assert list(x.bbox) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
