"""Models: shapes, TKCA gather == dense reference, background never attended, depth-based
correspondences on a cube, VLFA behaviour, and CMT overfitting 16 samples on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brokenchairs.generation.cameras import Viewpoint, camera_for, intrinsics
from brokenchairs.generation.views import patch_points
from brokenchairs.models import MODEL_NAMES, build_model, parameter_count
from brokenchairs.models.tkca import dense_topk_reference, topk_cross_attention
from brokenchairs.models.vlfa import query_view_loss, view_correspondences, view_view_loss

H, N = 64, 4


def fake_batch(B=2, views=N, seed=0, valid_frac=0.7):
    g = torch.Generator().manual_seed(seed)
    h = H // 8
    return {"query": torch.rand(B, 3, H, H, generator=g) * 2 - 1,
            "views": torch.rand(B, views, 3, H, H, generator=g) * 2 - 1,
            "patch_xyz": torch.rand(B, views, h, h, 3, generator=g),
            "patch_valid": torch.rand(B, views, h, h, generator=g) < valid_frac,
            "label": torch.arange(B) % 2, "bbox": torch.rand(B, 4, generator=g) * 0.4 + 0.3}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes_for_every_model(name):
    model = build_model(name, image_size=H) if name == "vit" else build_model(name, box_head=True)
    out = model(fake_batch())
    assert out["logits"].shape == (2,) and torch.isfinite(out["logits"]).all()
    if name not in ("vit", "retrieval"):
        assert out["boxes"].shape == (2, 4) and ((out["boxes"] >= 0) & (out["boxes"] <= 1)).all()
    loss, parts = model.loss(fake_batch(), out)
    loss.backward()
    assert torch.isfinite(loss) and parameter_count(model) > 1e6


@pytest.mark.parametrize("topk", [1, 7, 64, 200])
def test_tkca_gather_equals_dense_reference_values_and_gradients(topk):
    g = torch.Generator().manual_seed(topk)
    B, h, nq, nv, dh = 2, 4, 9, 200, 8
    q, k, v = (torch.randn(B, h, n, dh, generator=g, dtype=torch.float32, requires_grad=True) for n in (nq, nv, nv))
    sim = torch.randn(B, nq, nv, generator=g)
    sim[:, :, :40] = float("-inf")  # background keys
    outs, grads = [], []
    for fn in (topk_cross_attention, dense_topk_reference):
        for t in (q, k, v):
            t.grad = None
        o = fn(q, k, v, sim, topk)
        (o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum().backward()
        outs.append(o.detach())
        grads.append([t.grad.clone() for t in (q, k, v)])
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_topk_never_attends_to_background_patches():
    g = torch.Generator().manual_seed(1)
    B, h, nq, nv, dh = 1, 2, 5, 50, 4
    q, k, v = (torch.randn(B, h, n, dh, generator=g) for n in (nq, nv, nv))
    sim = torch.randn(B, nq, nv, generator=g) * 10
    background = torch.zeros(nv, dtype=torch.bool)
    background[::2] = True
    sim[:, :, background] = float("-inf")
    base = topk_cross_attention(q, k, v, sim, topk=40)  # more than the 25 valid keys
    v2, k2 = v.clone(), k.clone()
    v2[:, :, background] = 1e6
    k2[:, :, background] = -1e6
    torch.testing.assert_close(topk_cross_attention(q, k2, v2, sim, topk=40), base)
    # inside CMT, invalid view patches carry no position: their xyz cannot change the output
    model = build_model("cmt").eval()
    batch = fake_batch(B=1)
    other = dict(batch, patch_xyz=torch.where(batch["patch_valid"][..., None], batch["patch_xyz"], torch.full_like(batch["patch_xyz"], 9.0)))
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["logits"], model(other)["logits"])


def _cube_depth(K, w2c, res, half=0.3, center=(0, 0, 0.3)):
    """Analytic z-depth of an axis-aligned cube (ray/slab intersection)."""
    c2w = np.linalg.inv(w2c)
    u, v = np.meshgrid(np.arange(res) + 0.5, np.arange(res) + 0.5)
    rays_c = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    dirs = rays_c @ c2w[:3, :3].T
    o = c2w[:3, 3]
    lo, hi = np.array(center) - half, np.array(center) + half
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / dirs, (hi - o) / dirs
    tmin = np.minimum(t1, t2).max(-1)
    tmax = np.maximum(t1, t2).min(-1)
    hit = (tmax >= tmin) & (tmin > 0)
    return np.where(hit, tmin * rays_c[..., 2], 0.0)  # t along a ray with z=1 in camera -> z-depth


def test_view_view_correspondences_on_a_cube():
    res, stride = 64, 8
    K = intrinsics(res)
    cams = [camera_for(Viewpoint(az, 0.5), np.array([0, 0, 0.3])) for az in (0.0, np.pi / 2)]
    depths = [_cube_depth(K, c, res) for c in cams]
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


def test_vlfa_losses_prefer_aligned_features():
    g = torch.Generator().manual_seed(0)
    B, Nv, n, c = 2, 3, 64, 32
    zv = torch.nn.functional.normalize(torch.randn(B, Nv, n, c, generator=g), dim=-1)
    valid = torch.ones(B, Nv, n, dtype=torch.bool)
    zq_aligned = zv[:, 0].clone()
    zq_random = torch.nn.functional.normalize(torch.randn(B, n, c, generator=g), dim=-1)
    qv = torch.ones(B, n, dtype=torch.bool)
    aligned = query_view_loss(zq_aligned, qv, zv[:, :1].expand(-1, Nv, -1, -1), valid, 0.07, 32, g)
    shuffled = query_view_loss(zq_random, qv, zv, valid, 0.07, 32, g)
    assert aligned < shuffled
    # view-view: features that are a function of the 3D point align views; shuffled ones do not
    res, stride = 64, 8
    K = intrinsics(res)
    cams = [camera_for(Viewpoint(az, 0.5), np.array([0, 0, 0.3])) for az in (0.0, 0.5)]
    depths = np.stack([_cube_depth(K, cam, res) for cam in cams])
    xyz, val = map(np.stack, zip(*(patch_points(d, K, cam, stride) for d, cam in zip(depths, cams))))
    proj = torch.randn(3, 16, generator=g)
    feats = torch.nn.functional.normalize(torch.sin(torch.as_tensor(xyz, dtype=torch.float32) @ proj * 8), dim=-1)
    zv = feats.reshape(1, 2, -1, 16)
    args = dict(v_valid=torch.as_tensor(val).reshape(1, 2, -1), patch_xyz=torch.as_tensor(xyz, dtype=torch.float32).reshape(1, 2, -1, 3),
                depth=torch.as_tensor(depths, dtype=torch.float32)[None], K=torch.as_tensor(K, dtype=torch.float32).expand(1, 2, 3, 3),
                w2c=torch.as_tensor(np.stack(cams), dtype=torch.float32)[None], stride=stride, tau=0.07, patches=64)
    good = view_view_loss(zv, generator=torch.Generator().manual_seed(1), **args)
    perm = torch.randperm(zv.shape[2], generator=g)
    bad = view_view_loss(zv[:, :, perm], generator=torch.Generator().manual_seed(1), **args)
    assert good < bad


def test_cmt_overfits_16_samples_on_cpu():
    torch.manual_seed(0)
    batch = fake_batch(B=16, views=2, seed=3, valid_frac=1.0)
    batch["label"] = torch.tensor([0, 1] * 8)[torch.randperm(16, generator=torch.Generator().manual_seed(4))]
    model = build_model("cmt")
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    for _ in range(30):
        out = model(batch)
        loss, _ = model.loss(batch, out)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = ((model(batch)["logits"] > 0).long() == batch["label"]).float().mean().item()
    assert acc >= 0.95
