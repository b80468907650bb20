"""OpenCV camera conventions: look-at, projection and depth unprojection."""

from __future__ import annotations

import numpy as np
import pytest

from brokenchairs.dataset.cameras import (
    Viewpoint,
    camera_for,
    eye_position,
    intrinsics,
    project,
    query_viewpoints,
    reference_viewpoints,
    unproject_depth,
)


def test_target_projects_to_image_centre_and_up_is_up():
    K = intrinsics(64)
    target = np.array([0.1, -0.2, 0.4])
    for az in np.linspace(0, 2 * np.pi, 7):
        w2c = camera_for(Viewpoint(az, 0.5), target)
        uv, z = project(np.array([target, target + [0, 0, 0.1]]), K, w2c)
        assert uv[0] == pytest.approx([32, 32])
        assert z[0] == pytest.approx(2.5)
        assert uv[1, 1] < uv[0, 1]  # world up is image up (smaller v)
        assert np.linalg.det(w2c[:3, :3]) == pytest.approx(1.0)


def test_unprojected_depth_returns_the_points():
    K = intrinsics(32)
    w2c = camera_for(Viewpoint(1.0, 0.4), np.zeros(3))
    rng = np.random.default_rng(0)
    depth = rng.uniform(2.0, 3.0, (32, 32))
    pts = unproject_depth(depth, K, w2c)
    uv, z = project(pts.reshape(-1, 3), K, w2c)
    u, v = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5)
    assert uv[:, 0] == pytest.approx(u.ravel()) and uv[:, 1] == pytest.approx(v.ravel())
    assert z == pytest.approx(depth.ravel())


def test_viewpoint_samplers_follow_the_paper():
    rng = np.random.default_rng(1)
    for count in (1, 4, 8, 12, 20):
        views = query_viewpoints(rng, count)
        steps = [v.azimuth / (np.pi / 10) for v in views]
        assert len(views) == count and all(np.pi / 9 <= v.elevation <= 2 * np.pi / 9 and v.radius == 2.5 for v in views)
        assert steps == pytest.approx([round(s) for s in steps]) and all(0 <= round(s) < 20 for s in steps)
        assert len({round(s) for s in steps}) == count and steps == sorted(steps)  # distinct, in grid order
    assert query_viewpoints(np.random.default_rng(7), 5) == query_viewpoints(np.random.default_rng(7), 5)
    with pytest.raises(ValueError):
        query_viewpoints(rng, 21)  # without replacement: at most the 20 grid azimuths
    views = reference_viewpoints(20)
    eyes = np.array([eye_position(v, np.zeros(3)) for v in views])
    assert np.all(eyes[:, 2] > 0) and len({round(v.azimuth, 6) for v in views}) == 20
    with pytest.raises(ValueError):
        reference_viewpoints(0)
