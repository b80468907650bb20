"""VLFA: depth-based correspondences on a cube, the batched farthest-point and pseudo-label samplers
against one-sample references, the contrastive negatives, and the losses preferring aligned features."""

from __future__ import annotations

import numpy as np
import torch
from cube_views import cube_depth

from brokenchairs.dataset.cameras import Viewpoint, camera_for, intrinsics
from brokenchairs.dataset.views import patch_points
from brokenchairs.models.vlfa import (contrast, farthest_mask, pair_loss, query_view_pairs, view_correspondences,
                                      view_view_pairs)


def test_view_view_correspondences_on_a_cube():
    res, stride = 64, 8
    K = intrinsics(res)
    cams = [camera_for(Viewpoint(az, 0.5), np.array([0, 0, 0.3])) for az in (0.0, np.pi / 2)]
    depths = [cube_depth(K, c, res) for c in cams]
    xyz, valid = zip(*(patch_points(d, K, c, stride) for d, c in zip(depths, cams)))
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    ia, ib = view_correspondences(t(xyz[0]).reshape(-1, 3), torch.as_tensor(valid[0]).reshape(-1), t(K), t(cams[1]),
                                  t(depths[1]), stride)
    assert len(ia) > 5
    pa, pb = xyz[0].reshape(-1, 3)[ia.numpy()], xyz[1].reshape(-1, 3)[ib.numpy()]
    assert np.median(np.linalg.norm(pa - pb, axis=1)) < 0.1  # same place on the cube
    # the +x face is seen by camera 0 (azimuth 0) but hidden from camera 1 (azimuth 90 deg, on +y)
    pts = xyz[0].reshape(-1, 3)
    on_px_face = valid[0].reshape(-1) & (np.abs(pts[:, 0] - 0.3) < 1e-3) & (pts[:, 1] < 0.25)
    assert on_px_face.sum() > 3
    assert not np.isin(np.nonzero(on_px_face)[0], ia.numpy()).any(), "occluded points must be rejected"


def _fps_one_row(cells: np.ndarray, grid_w: int, m: int) -> set[int]:
    """Reference farthest-point sampling: one row, one point at a time, from the first cell."""
    if len(cells) <= m:
        return set(cells.tolist())
    pos = np.stack([cells % grid_w, cells // grid_w], -1).astype(np.float32)
    chosen, dist = [0], np.full(len(cells), np.inf, np.float32)
    for _ in range(1, m):
        dist = np.minimum(dist, ((pos - pos[chosen[-1]]) ** 2).sum(-1))
        chosen.append(int(dist.argmax()))
    return set(cells[chosen].tolist())


def test_batched_farthest_points_keep_each_rows_own_sampling():
    rng = np.random.default_rng(0)
    grid_w, m = 16, 32
    ok = rng.random((12, grid_w * grid_w)) < rng.uniform(0, 0.6, (12, 1))
    ok[0], ok[1, :] = False, False
    ok[1, [3, 40, 41]] = True  # fewer cells than m: all of them
    keep = farthest_mask(torch.as_tensor(ok), grid_w, m).numpy()
    assert not keep[0].any() and set(np.nonzero(keep[1])[0]) == {3, 40, 41}
    for row_ok, row_keep in zip(ok, keep):
        assert set(np.nonzero(row_keep)[0].tolist()) == _fps_one_row(np.nonzero(row_ok)[0], grid_w, m)
        assert row_keep.sum() == min(m, row_ok.sum())


def test_view_view_pairs_of_a_batch_equal_each_sample_alone():
    res, stride = 64, 8
    K = intrinsics(res)
    cams = [camera_for(Viewpoint(az, 0.5), np.array([0, 0, 0.3])) for az in (0.0, 0.4, 1.2, 2.5)]
    depths = np.stack([cube_depth(K, cam, res) for cam in cams])
    xyz, val = map(np.stack, zip(*(patch_points(d, K, cam, stride) for d, cam in zip(depths, cams))))
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    a, b = [0, 1, 2, 0], [1, 2, 3, 3]  # view pairs, the last two far apart
    va, xa = torch.as_tensor(val[a]).flatten(1), t(xyz[a]).flatten(1, 2)
    vb = torch.as_tensor(val[b]).flatten(1)
    pairs = view_view_pairs(va, xa, vb, t(K)[None].expand(4, 3, 3), t(np.stack(cams))[b], t(depths[b]), stride,
                            res // stride, 8)
    assert [s for s, _, _ in pairs] and len(pairs) <= 4
    by_sample = {s: (ia, ib) for s, ia, ib in pairs}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in a CUDA training step: the geometry stays float32
        assert [(s, ia.tolist(), ib.tolist()) for s, ia, ib in pairs] == [
            (s, ia.tolist(), ib.tolist()) for s, ia, ib in view_view_pairs(
                va, xa, vb, t(K)[None].expand(4, 3, 3), t(np.stack(cams))[b], t(depths[b]), stride, res // stride, 8)]
    for s in range(4):
        ia, ib = view_correspondences(xa[s], va[s], t(K), t(cams[b[s]]), t(depths[b[s]]), stride)
        good = vb[s][ib]
        ia, ib = ia[good].numpy(), ib[good].numpy()
        want = _fps_one_row(ia, res // stride, 8)
        got_ia, got_ib = by_sample.get(s, (torch.zeros(0, dtype=torch.long),) * 2)
        assert set(got_ia.tolist()) == want
        assert dict(zip(got_ia.tolist(), got_ib.tolist())) == {i: j for i, j in zip(ia.tolist(), ib.tolist()) if i in want}


def test_contrast_negatives_are_own_pair_and_other_objects_only():
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    owner, shape, key_id = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 0, 0, 0, 5, 5]), torch.arange(6)
    aligned = contrast(z, z, owner, shape, key_id, 0.1)
    # keys of pair 1 (same shape as pair 0, another sample) must not act as pair 0's negatives
    keys = z.clone()
    keys[2:4] = z[0:2]  # would be perfect false negatives for rows 0-1 if they counted
    assert contrast(z, keys, owner, shape, key_id, 0.1)[()] < contrast(z, keys, owner, torch.arange(6), key_id, 0.1)
    assert aligned < contrast(z, z.roll(1, 0), owner, shape, key_id, 0.1)


def test_query_view_pairs_pick_a_uniform_subset_of_valid_patches_for_the_whole_batch_at_once():
    """Eq. 13's pseudo-labels batched: each sample gets min(points, its valid query patches) distinct valid
    patches, each matched to its most similar valid patch of view b; samples without a valid query or view
    patch get none; over many draws every valid patch is picked equally often (a uniform subset)."""
    g = torch.Generator().manual_seed(4)
    B, nq, n_v, c, points = 5, 40, 30, 8, 6
    zq, zv = torch.randn(B, nq, c, generator=g), torch.randn(B, n_v, c, generator=g)
    q_valid, v_valid = torch.rand(B, nq, generator=g) < 0.5, torch.rand(B, n_v, generator=g) < 0.6
    q_valid[1] = False  # no valid query patch
    v_valid[2] = False  # no valid view patch
    q_valid[3] = False
    q_valid[3, [4, 9, 17]] = True  # fewer valid patches than points
    pairs = query_view_pairs(zq, q_valid, zv, v_valid, points, g)
    assert [s for s, _, _ in pairs] == [0, 3, 4]
    for s, a, b in pairs:
        assert q_valid[s, a].all() and len(set(a.tolist())) == len(a) == min(points, int(q_valid[s].sum()))
        sim = (zq[s, a] @ zv[s].T).masked_fill(~v_valid[s][None], float("-inf"))
        assert torch.equal(b, sim.argmax(-1)) and v_valid[s, b].all()
    assert sorted(pairs[1][1].tolist()) == [4, 9, 17]
    # uniform: 10 valid cells, 3 picked per draw, 3000 draws -> each cell about 900 times
    one = torch.zeros(1, nq, dtype=torch.bool)
    one[0, :10] = True
    counts = torch.zeros(nq)
    for _ in range(3000):
        (_, a, _), = query_view_pairs(zq[:1], one, zv[:1], torch.ones(1, n_v, dtype=torch.bool), 3, g)
        counts[a] += 1
    assert counts[10:].sum() == 0 and (counts[:10] - 900).abs().max() < 90


def test_vlfa_losses_prefer_aligned_features():
    g = torch.Generator().manual_seed(0)
    B, n, c = 2, 64, 32
    zv = torch.nn.functional.normalize(torch.randn(B, n, c, generator=g), dim=-1)
    valid = torch.ones(B, n, dtype=torch.bool)
    zq_random = torch.nn.functional.normalize(torch.randn(B, n, c, generator=g), dim=-1)
    pairs = query_view_pairs(zv.clone(), valid, zv, valid, 32, g)
    assert all(torch.equal(a, b) for _, a, b in pairs)  # a query equal to the view pseudo-matches in place
    shape_key = torch.arange(B)
    aligned = pair_loss(pairs, zv, zv, shape_key, 0.1)
    shuffled = pair_loss(query_view_pairs(zq_random, valid, zv, valid, 32, g), zq_random, zv, shape_key, 0.1)
    assert aligned < shuffled
    # view-view: features that are a function of the 3D point align views; shuffled ones do not
    res, stride = 64, 8
    K = intrinsics(res)
    cams = [camera_for(Viewpoint(az, 0.5), np.array([0, 0, 0.3])) for az in (0.0, 0.5)]
    depths = np.stack([cube_depth(K, cam, res) for cam in cams])
    xyz, val = map(np.stack, zip(*(patch_points(d, K, cam, stride) for d, cam in zip(depths, cams))))
    proj = torch.randn(3, 16, generator=g)
    feats = torch.nn.functional.normalize(torch.sin(torch.as_tensor(xyz, dtype=torch.float32) @ proj * 8), dim=-1)
    f = feats.reshape(2, -1, 16)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    pairs = view_view_pairs(torch.as_tensor(val[:1]).reshape(1, -1), t(xyz[:1]).reshape(1, -1, 3),
                            torch.as_tensor(val[1:]).reshape(1, -1), t(K)[None], t(cams[1])[None], t(depths[1:]),
                            stride, res // stride, 32)
    assert len(pairs) == 1 and 5 < len(pairs[0][1]) <= 32
    good = pair_loss(pairs, f[:1], f[1:], torch.zeros(1), 0.1)
    perm = torch.randperm(f.shape[1], generator=g)
    bad = pair_loss(pairs, f[:1], f[1:, perm], torch.zeros(1), 0.1)
    assert good < bad
