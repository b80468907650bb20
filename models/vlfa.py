"""View-agnostic local feature alignment (paper 4.3, Eq. 13-15), with the released code's choices.

beta maps local features to a view-agnostic space: a 4-layer MLP (128 -> 1024 -> 1024 -> 1024 ->
256, ReLU, as released) and L2 normalisation per token. Two contrastive losses (Eq. 14):
- query-view: a random subset of foreground query patches; each one's positive is its most
  similar valid patch of a randomly drawn reference view b (Eq. 13, a pseudo-label found with the
  online encoder, without gradient);
- view-view: ground-truth correspondences between views a and b of the reference, from depth and
  poses (unproject a patch's 3D point, project it into b, keep it if it lands on the object and
  passes a depth test), farthest-point sampled in a's patch grid (the released loader samples 32
  co-visible points by FPS).
As released: the keys (view b) come from a momentum (EMA, m = 0.999) copy of encoder and beta,
without gradient; the anchors from the online model; temperature 0.1; the negatives of an anchor
are the other sampled points of its own pair and every sampled point of the other objects in the
batch (``contrast``). Without a momentum copy the keys are the online features, detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Projector(nn.Module):
    """beta: 4-layer MLP + channel-wise (L2) normalisation."""

    def __init__(self, d: int = 128, hidden: int = 1024, out: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out, bias=False))

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


def farthest_points(pos: torch.Tensor, m: int) -> torch.Tensor:
    """Indices of m points of pos (n,2) by farthest-point sampling from the first (all if n <= m)."""
    n = pos.shape[0]
    if n <= m:
        return torch.arange(n, device=pos.device)
    chosen = torch.zeros(m, dtype=torch.long, device=pos.device)
    dist = torch.full((n,), float("inf"), device=pos.device)
    for i in range(1, m):
        dist = torch.minimum(dist, (pos - pos[chosen[i - 1]]).pow(2).sum(-1))
        chosen[i] = dist.argmax()
    return chosen


def contrast(anchors: torch.Tensor, keys: torch.Tensor, owner: torch.Tensor, shape: torch.Tensor,
             key_id: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE of anchors (M,c) against keys (M,c), row i's positive being key i.

    Negatives of row i: the other keys of its own pair (``owner``), except copies of its own
    positive patch (``key_id``), and every key of a sample of another ``shape``.
    """
    logits = anchors @ keys.T / tau
    same_pair = owner[:, None] == owner[None, :]
    duplicate = same_pair & (key_id[:, None] == key_id[None, :])
    allowed = (same_pair & ~duplicate) | (shape[:, None] != shape[None, :])
    allowed.fill_diagonal_(True)
    target = torch.arange(len(anchors), device=anchors.device)
    return F.cross_entropy(logits.masked_fill(~allowed, float("-inf")), target)


def _pick(n: int, m: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randperm(n, generator=generator)[:m]


def query_view_pairs(zq: torch.Tensor, q_valid: torch.Tensor, zv_b: torch.Tensor, v_valid_b: torch.Tensor, points: int,
                     generator: torch.Generator | None = None) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Per sample: (sample, query patches, pseudo-matched patches of view b) (Eq. 13).

    zq (B,nq,c), q_valid (B,nq), zv_b (B,np,c) online features of view b, v_valid_b (B,np)."""
    pairs = []
    for s in range(zq.shape[0]):
        fg = torch.nonzero(q_valid[s]).squeeze(1)
        if len(fg) == 0 or not v_valid_b[s].any():
            continue
        sel = fg[_pick(len(fg), points, generator).to(fg.device)]
        with torch.no_grad():
            sim = (zq[s, sel] @ zv_b[s].T).masked_fill(~v_valid_b[s][None], float("-inf"))
            pairs.append((s, sel, sim.argmax(-1)))
    return pairs


def view_view_pairs(v_valid_a: torch.Tensor, xyz_a: torch.Tensor, v_valid_b: torch.Tensor, K_b: torch.Tensor,
                    w2c_b: torch.Tensor, depth_b: torch.Tensor, stride: int, grid_w: int,
                    points: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Per sample: (sample, patches of view a, the patches of view b seeing the same 3D points),
    farthest-point sampled in a's grid. Shapes: (B,np), (B,np,3), (B,np), (B,3,3), (B,4,4), (B,H,W)."""
    pairs = []
    for s in range(v_valid_a.shape[0]):
        ia, ib = view_correspondences(xyz_a[s], v_valid_a[s], K_b[s], w2c_b[s], depth_b[s], stride)
        ok = v_valid_b[s][ib]
        ia, ib = ia[ok], ib[ok]
        if len(ia) == 0:
            continue
        pos = torch.stack([ia % grid_w, ia // grid_w], -1).float()
        keep = farthest_points(pos, points)
        pairs.append((s, ia[keep], ib[keep]))
    return pairs


def pair_loss(pairs: list[tuple[int, torch.Tensor, torch.Tensor]], anchor_feats: torch.Tensor, key_feats: torch.Tensor,
              shape_key: torch.Tensor, tau: float) -> torch.Tensor | None:
    """``contrast`` over every pair of the batch: anchor_feats (B,n,c) indexed by the pairs' first
    indices, key_feats (B,np,c) by their second. None when the batch holds no pair."""
    if not pairs:
        return None
    anchors = torch.cat([anchor_feats[s, ia] for s, ia, _ in pairs])
    keys = torch.cat([key_feats[s, ib] for s, _, ib in pairs])
    owner = torch.cat([torch.full((len(ia),), s, device=anchors.device) for s, ia, _ in pairs])
    key_id = torch.cat([ib for _, _, ib in pairs]).to(anchors.device)
    return contrast(anchors, keys, owner, shape_key[owner], key_id, tau)
