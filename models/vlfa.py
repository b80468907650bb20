"""View-agnostic local feature alignment (paper 4.3, Eq. 13-15).

beta maps local features to a view-agnostic space (4-layer MLP, then L2 normalisation per
token). Two contrastive losses (Eq. 14) with temperature tau:
- query-view: pseudo-labels = argmax similarity of a random subset of foreground query patches to
  the patches of a randomly sampled view (Eq. 13); every other valid patch of that view is a negative;
- view-view: ground-truth correspondences between two views of the reference, from depth and
  poses -- unproject a patch's 3D point, project it into the other view, keep it if it lands on
  the object and passes a depth test (not occluded) -- randomly subsampled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Projector(nn.Module):
    """beta: 4-layer MLP + channel-wise (L2) normalisation."""

    def __init__(self, d: int = 128, out: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d), nn.GELU(), nn.Linear(d, d), nn.GELU(),
                                 nn.Linear(d, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1)


def view_correspondences(xyz_a: torch.Tensor, valid_a: torch.Tensor, K_b: torch.Tensor, w2c_b: torch.Tensor,
                         depth_b: torch.Tensor, stride: int, tol: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches of view a (flattened h*w) and the patches of view b that see the same 3D point.

    xyz_a (n,3) world points of a's patches, valid_a (n,), K_b (3,3), w2c_b (4,4), depth_b (H,W)
    camera-z depth of b (0 = background). Returns index tensors (ia, ib).
    """
    H, W = depth_b.shape
    w = W // stride
    pc = xyz_a @ w2c_b[:3, :3].T + w2c_b[:3, 3]
    z = pc[:, 2]
    uv = pc @ K_b.T
    u = uv[:, 0] / uv[:, 2].clamp_min(1e-9)
    v = uv[:, 1] / uv[:, 2].clamp_min(1e-9)
    ui, vi = u.floor().long(), v.floor().long()
    inside = valid_a & (z > 0) & (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    d = torch.zeros_like(z)
    d[inside] = depth_b[vi[inside], ui[inside]]
    ok = inside & (d > 0) & ((z - d).abs() < tol)  # lands on the object and is the visible surface
    ia = torch.nonzero(ok).squeeze(1)
    ib = (vi[ok] // stride) * w + (ui[ok] // stride)
    return ia, ib


def _nce(anchors: torch.Tensor, keys: torch.Tensor, key_valid: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    logits = anchors @ keys.T / tau
    logits = logits.masked_fill(~key_valid[None], float("-inf"))
    return F.cross_entropy(logits, target)


def query_view_loss(zq: torch.Tensor, q_valid: torch.Tensor, zv: torch.Tensor, v_valid: torch.Tensor, tau: float,
                    patches: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """zq (B,nq,c), q_valid (B,nq), zv (B,N,np,c), v_valid (B,N,np)."""
    losses = []
    for b in range(zq.shape[0]):
        views = torch.nonzero(v_valid[b].any(-1)).squeeze(1)
        fg = torch.nonzero(q_valid[b]).squeeze(1)
        if len(views) == 0 or len(fg) == 0:
            continue
        n = views[torch.randint(len(views), (1,), generator=generator)].item()
        sel = fg[torch.randperm(len(fg), generator=generator)[:patches]]
        with torch.no_grad():  # Eq. 13: pseudo-labels
            s = zq[b, sel] @ zv[b, n].T
            target = s.masked_fill(~v_valid[b, n][None], float("-inf")).argmax(-1)
        losses.append(_nce(zq[b, sel], zv[b, n], v_valid[b, n], target, tau))
    return torch.stack(losses).mean() if losses else zq.sum() * 0


def view_view_loss(zv: torch.Tensor, v_valid: torch.Tensor, patch_xyz: torch.Tensor, depth: torch.Tensor,
                   K: torch.Tensor, w2c: torch.Tensor, stride: int, tau: float, patches: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """zv (B,N,np,c); patch_xyz (B,N,np,3); depth (B,N,H,W); K (B,N,3,3); w2c (B,N,4,4)."""
    losses = []
    B, N = zv.shape[:2]
    for b in range(B):
        if N < 2:
            break
        pair = torch.randperm(N, generator=generator)[:2]
        i, j = pair[0].item(), pair[1].item()
        ia, ib = view_correspondences(patch_xyz[b, i], v_valid[b, i], K[b, j], w2c[b, j], depth[b, j], stride)
        ok = v_valid[b, j][ib]
        ia, ib = ia[ok], ib[ok]
        if len(ia) == 0:
            continue
        keep = torch.randperm(len(ia), generator=generator)[:patches]
        losses.append(_nce(zv[b, i, ia[keep]], zv[b, j], v_valid[b, j], ib[keep], tau))
    return torch.stack(losses).mean() if losses else zv.sum() * 0
