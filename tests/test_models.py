"""Models: shapes, TKCA mask == gathered keys, [tok] attends to every view token, one encoder pass,
shared views encoded once, VLFA's weight in the loss, the registry's overrides, and CMT overfitting
16 samples on CPU. VLFA's pair sampling and losses: tests/test_vlfa.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cube_views import cube_depth
from sklearn.metrics import roc_auc_score

from brokenchairs.dataset.cameras import Viewpoint, camera_for, intrinsics
from brokenchairs.dataset.views import patch_points
from brokenchairs.models import MODEL_NAMES, build_model, parameter_count, spec
from brokenchairs.models.tkca import cross_attention, gather_attention, topk_mask

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
    s = spec(name)
    model = build_model(name, image_size=H) if name == "vit" else build_model(name, **({"box_head": True} if s.boxes else {}))
    out = model(fake_batch())
    assert out["logits"].shape == (2,) and torch.isfinite(out["logits"]).all()
    if s.boxes:
        assert out["boxes"].shape == (2, 4) and ((out["boxes"] >= 0) & (out["boxes"] <= 1)).all()
    loss, parts = model.loss(fake_batch(), out)
    loss.backward()
    assert torch.isfinite(loss) and parameter_count(model) > 1e6
    if s.vlfa:
        assert "va_qv" in parts


def test_registry_refuses_overrides_a_model_does_not_take():
    with pytest.raises(ValueError, match="box_head"):
        build_model("retrieval", box_head=True)
    with pytest.raises(ValueError, match="topk"):
        build_model("cmt-a", topk=10)
    assert spec("cmt").views and spec("cmt").vlfa and not spec("resnet18-fpn").views


@pytest.mark.parametrize("topk", [1, 7, 64, 200])
def test_tkca_mask_equals_gathered_keys_values_and_gradients(topk):
    g = torch.Generator().manual_seed(topk)
    B, h, nq, nv, dh = 2, 4, 9, 200, 8
    q = torch.randn(B, h, 1 + nq, dh, generator=g, requires_grad=True)
    k, v = (torch.randn(B, nv, h * dh, generator=g, requires_grad=True) for _ in range(2))
    idx = torch.randn(B, nq, nv, generator=g).topk(min(topk, nv), dim=-1).indices
    split = lambda t: t.unflatten(-1, (h, dh)).transpose(1, 2)  # noqa: E731
    outs, grads = [], []
    for fn in (lambda: cross_attention(q, k, v, idx)[:, :, 1:], lambda: gather_attention(q[:, :, 1:], split(k), split(v), idx)):
        for t in (q, k, v):
            t.grad = None
        o = fn()
        (o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum().backward()
        outs.append(o.detach())
        grads.append([t.grad.clone() for t in (q, k, v)])
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_tok_attends_to_every_view_token_and_query_tokens_only_to_their_top_k():
    idx = torch.tensor([[[0, 3], [5, 1]]])  # 2 query tokens, 2 keys each, 6 view tokens
    mask = topk_mask(idx, 6)[0, 0]
    assert mask[0].all()  # [tok]'s row is open, as released
    assert mask[1].nonzero().flatten().tolist() == [0, 3] and mask[2].nonzero().flatten().tolist() == [1, 5]
    # a value no query token selected reaches [tok]'s output, and only [tok]'s
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 3, 4, generator=g)
    k, v = torch.randn(1, 6, 8, generator=g), torch.randn(1, 6, 8, generator=g)
    base = cross_attention(q, k, v, idx)
    v2 = v.clone()
    v2[:, 4] += 10.0  # token 4 is in no query token's top-k
    moved = cross_attention(q, k, v2, idx)
    assert not torch.allclose(base[:, :, 0], moved[:, :, 0]) and torch.allclose(base[:, :, 1:], moved[:, :, 1:])


def test_views_and_query_share_one_encoder_pass_and_shared_views_are_encoded_once():
    torch.manual_seed(0)
    model = build_model("cmt", box_head=True)
    calls = []
    model.encoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    batch = fake_batch(B=4, views=3, valid_frac=0.8)
    for key in ("views", "patch_xyz", "patch_valid"):  # samples 0-1 and 2-3 share their views
        batch[key] = batch[key][[0, 0, 2, 2]]
    model.eval()
    with torch.no_grad():
        plain = model(batch)
        assert calls == [4 * 3 + 4]  # one batch: every view set, then the queries (one BatchNorm pass)
        shared = model(dict(batch, view_group=torch.tensor([7, 7, 9, 9])))
        assert calls[-1] == 2 * 3 + 4  # each distinct view set once
    torch.testing.assert_close(plain["logits"], shared["logits"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain["boxes"], shared["boxes"], atol=1e-5, rtol=1e-5)
    # the same loss on a fixed batch (VLFA's random pairs from the same generator state)
    with torch.no_grad():
        loss_plain, _ = model.loss(batch, plain, torch.Generator().manual_seed(3))
        loss_shared, _ = model.loss(dict(batch, view_group=torch.tensor([7, 7, 9, 9])), shared, torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss_plain, loss_shared, atol=1e-5, rtol=1e-5)


def fit(model, batch, steps: int, lr: float) -> dict:
    """Adam on one batch for a number of steps; the last step's loss parts."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss, parts = model.loss(batch, model(batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return parts


def test_cmt_overfits_16_samples_on_cpu():
    torch.manual_seed(0)
    batch = fake_batch(B=16, views=2, seed=3, valid_frac=1.0)
    batch["label"] = torch.tensor([0, 1] * 8)[torch.randperm(16, generator=torch.Generator().manual_seed(4))]
    model = build_model("cmt")
    fit(model, batch, steps=30, lr=3e-4)
    model.eval()
    with torch.no_grad():
        acc = ((model(batch)["logits"] > 0).long() == batch["label"]).float().mean().item()
    assert acc >= 0.95


def test_cell_targets_mark_the_cells_the_mask_touches():
    from brokenchairs.models.cmt import cell_targets

    mask = torch.zeros(1, H, H, dtype=torch.bool)
    mask[0, 9, 17] = True  # cell (1, 2)
    mask[0, 40:48, 0:16] = True  # cells (5, 0) and (5, 1), exactly
    t = cell_targets(mask).view(H // 8, H // 8)
    assert t.sum() == 3 and t[1, 2] == t[5, 0] == t[5, 1] == 1


@pytest.mark.parametrize("name", ["resnet18-fpn", "cmt"])
def test_cell_head_learns_where_the_anomaly_is(name):
    """With cell_weight > 0 the per-cell head is trained by the masks: after some steps on one
    batch its logits rank the masked cells above the others (cell AUC, the anomalous images alone
    too); without it there is no head. 25 steps left the ranking at 0.88 for some seeds, 40 reach
    0.97 or more for every seed tried."""
    assert "cell_logits" not in build_model(name)(fake_batch())
    torch.manual_seed(0)
    batch = fake_batch(B=4, views=2, seed=5, valid_frac=1.0)
    batch["query"][:, :, :8, :] = 1.0  # a white top row of cells: background, outside the loss unless masked
    mask = torch.zeros(4, H, H, dtype=torch.bool)
    mask[1, 16:32, 16:32] = True
    mask[3, 40:56, 8:24] = True
    batch["mask"], batch["label"] = mask, torch.tensor([0, 1, 0, 1])
    model = build_model(name, cell_weight=1.0)
    parts = fit(model, batch, steps=40, lr=1e-3)
    assert "cell" in parts
    model.eval()
    with torch.no_grad():
        logits = model(batch)["cell_logits"]
    inside = mask.view(4, H // 8, 8, H // 8, 8).any(4).any(2).flatten(1)
    assert roc_auc_score(inside.flatten().numpy(), logits.flatten().numpy()) >= 0.95
    anomalous = batch["label"] == 1
    assert roc_auc_score(inside[anomalous].flatten().numpy(), logits[anomalous].flatten().numpy()) >= 0.95


def test_init_from_copies_every_matching_tensor_and_refuses_a_checkpoint_that_shares_none(tmp_path):
    """``init_from``: CMT starts from a trained query-only ResNet18-FPN (same encoder, [tok] and
    head names); its EMA key copies start equal to the loaded encoder; a ViT checkpoint fits nothing."""
    from brokenchairs.benchmark.checkpoint import init_weights, save_checkpoint
    from brokenchairs.errors import InputError

    kw = {"d": 32, "encoder_head": "fpn"}
    torch.manual_seed(1)
    source = build_model("resnet18-fpn", **kw)
    path = save_checkpoint(tmp_path / "r.pt", model=source, model_name="resnet18-fpn", model_kwargs=kw, config={})
    torch.manual_seed(2)
    cmt = build_model("cmt", **kw, heads=2, head_dim=8, blocks=1, proj_hidden=32, proj_dim=16, topk=8)
    before = {k: v.clone() for k, v in cmt.state_dict().items()}
    n = init_weights(cmt, path)
    src, own = source.state_dict(), cmt.state_dict()
    assert n == len(src) and all(torch.equal(own[k], v) for k, v in src.items())
    copies = ("encoder_k.", "beta_k.")  # the EMA key copies follow the loaded weights (checked below)
    assert all(torch.equal(own[k], before[k]) for k in own if k not in src and not k.startswith(copies))
    float_keys = [k for k, v in src.items() if k.startswith("encoder.") and v.is_floating_point() and "running" not in k]
    assert any(not torch.equal(own[k], before[k]) for k in float_keys)  # the seeds differ: something was copied
    enc, enc_k = dict(cmt.encoder.named_parameters()), dict(cmt.encoder_k.named_parameters())
    assert all(torch.equal(enc[k], enc_k[k]) for k in enc)
    vit = build_model("vit", image_size=H, patch=16, layers=1, heads=2, width=16)
    bad = save_checkpoint(tmp_path / "vit.pt", model=vit, model_name="vit", model_kwargs={}, config={})
    with pytest.raises(InputError, match="vit.pt.*no weights of model 'vit' fit"):
        init_weights(cmt, bad)


@pytest.mark.parametrize("name", ["resnet18-fpn-sa", "cmt"])
def test_token_plus_pool_readout_adds_the_query_foreground_mean_to_tok(name):
    """``readout=token+pool``: the heads read [tok] after the decoder plus the mean of the encoder's
    foreground query tokens (the plain ResNet18-FPN's state); background cells do not count."""
    from brokenchairs.models.encoder import query_foreground

    torch.manual_seed(0)
    kw = {"d": 32, "heads": 2, "head_dim": 8, "blocks": 1}
    model = build_model(name, **kw, readout="token+pool", **({"topk": 8} if name == "cmt" else {})).eval()
    batch = fake_batch()
    batch["query"][0, :, :, : H // 2] = 1.0  # left half of the first query white: background cells
    seen = {}
    model.decoder.register_forward_hook(lambda mod, args, out: seen.update(x=out))
    with torch.no_grad():
        logits = model(batch)["logits"]
        q = batch["query"]
        fmap = model.encoder(torch.cat([batch["views"].flatten(0, 1), q]) if name == "cmt" else q)[-len(q):]
        tokens, valid = fmap.flatten(2).transpose(1, 2), query_foreground(q).float()
        assert 0 < valid[0].sum() < valid.shape[1]
        pooled = (tokens * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
        expected = model.head(seen["x"][:, 0] + pooled).squeeze(-1)
    assert torch.allclose(logits, expected, atol=1e-5)
    with pytest.raises(ValueError, match="readout must be one of token, token\\+pool"):
        build_model(name, **kw, readout="pool")


def test_vlfa_scale_multiplies_both_vlfa_terms_and_nothing_else():
    """``vlfa_scale=s``: total = BCE + s x (a L_qv + (1-a) L_vv); the parts it reports stay unweighted,
    and s = 0 leaves the BCE alone."""
    K = intrinsics(H)
    cams = [camera_for(Viewpoint(az, 0.5), np.array([0, 0, 0.3])) for az in np.linspace(0, 1.2, N)]
    depths = np.stack([cube_depth(K, c, H) for c in cams])
    xyz, valid = map(np.stack, zip(*(patch_points(d, K, c, 8) for d, c in zip(depths, cams))))
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32).expand(4, *np.shape(a)).clone()  # noqa: E731
    batch = fake_batch(B=4)
    batch.update(view_depth=t(depths), view_K=t(np.stack([K] * N)), view_world_to_cam=t(np.stack(cams)[:, :3]),
                 patch_xyz=t(xyz), patch_valid=t(valid).bool())
    runs = {}
    for scale in (1.0, 0.25, 0.0):
        torch.manual_seed(0)
        model = build_model("cmt", d=32, heads=2, head_dim=8, blocks=1, topk=8, vlfa_scale=scale).eval()
        with torch.no_grad():
            total, parts = model.loss(batch, model(batch), torch.Generator().manual_seed(1))
        runs[scale] = (total, parts)
    (t1, p1), (tq, pq), (t0, p0) = runs[1.0], runs[0.25], runs[0.0]
    assert "va_qv" in p1 and "va_vv" in p1 and all(torch.equal(p1[k], pq[k]) for k in p1)
    vlfa = 0.5 * p1["va_qv"] + 0.5 * p1["va_vv"]
    assert torch.allclose(t1, p1["bce"] + vlfa) and torch.allclose(tq, pq["bce"] + 0.25 * vlfa)
    assert torch.allclose(t0, p0["bce"]) and vlfa > 0


def test_momentum_update_is_the_ema_of_each_key_tensor():
    model = build_model("cmt", d=32, heads=2, head_dim=8, blocks=1, proj_hidden=32, proj_dim=16, topk=8, momentum=0.9)
    with torch.no_grad():
        for p in list(model.encoder.parameters()) + list(model.beta.parameters()):
            p.add_(torch.randn_like(p))
    online = [p.detach().clone() for p in list(model.encoder.parameters()) + list(model.beta.parameters())]
    before = [p.detach().clone() for p in list(model.encoder_k.parameters()) + list(model.beta_k.parameters())]
    model.momentum_update()
    after = list(model.encoder_k.parameters()) + list(model.beta_k.parameters())
    assert len(after) == len(online) > 10
    for k0, p, k1 in zip(before, online, after):
        assert torch.equal(k1, k0.mul(0.9).add(p, alpha=0.1))
    model.momentum_update(momentum=0)  # a plain copy
    assert all(torch.equal(k, p) for k, p in zip(list(model.encoder_k.parameters()) + list(model.beta_k.parameters()), online))


def test_a_checkpoint_that_cannot_be_written_is_one_line_naming_it_and_the_previous_one_is_kept(tmp_path):
    """A short write (here a real file-size limit, as a full disk gives) names the file and the free space,
    and leaves the earlier checkpoint of that name whole: what --resume needs after a disk fills up."""
    import subprocess
    import sys

    code = f"""
import resource, signal
from pathlib import Path
from brokenchairs.benchmark.checkpoint import read_checkpoint, save_checkpoint
from brokenchairs.errors import InputError
from brokenchairs.models import build_model
path = Path({str(tmp_path / "last.pt")!r})
small = build_model("resnet18-fpn")
save_checkpoint(path, model=small, model_name="resnet18-fpn", model_kwargs={{}}, config={{}}, epoch=1)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))  # files stop growing at 1 MiB: a short write
try:
    save_checkpoint(path, model=small, model_name="resnet18-fpn", model_kwargs={{}}, config={{}}, epoch=2)
except InputError as exc:
    print("ERROR", exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print("EPOCH", read_checkpoint(path, "resnet18-fpn")["epoch"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    error = next(line for line in out.splitlines() if line.startswith("ERROR"))
    assert str(tmp_path / "last.pt") in error and "could not write the checkpoint" in error and "MiB free" in error
    assert "EPOCH 1" in out and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
