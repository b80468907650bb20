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


def correspondence_mask(xyz_a: torch.Tensor, valid_a: torch.Tensor, K_b: torch.Tensor, w2c_b: torch.Tensor,
                        depth_b: torch.Tensor, stride: int, tol: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """Which patches of view a see a 3D point that view b sees too, and b's patch of it, for a batch.

    xyz_a (B,n,3) world points of a's patches, valid_a (B,n), K_b (B,3,3), w2c_b (B,4,4), depth_b (B,H,W)
    camera-z depth of b (0 = background). Returns ok (B,n) bool and ib (B,n) long (b's flattened patch index,
    meaningless where ok is False). Gathers instead of boolean indexing: no host-device synchronisation.
    Always in float32, also inside a bf16 autocast: the depth test's 2 cm are below bf16's step at 2.5 m.
    """
    H, W = depth_b.shape[-2:]
    w = W // stride
    with torch.autocast(xyz_a.device.type, enabled=False):
        xyz_a, K_b, w2c_b, depth_b = xyz_a.float(), K_b.float(), w2c_b.float(), depth_b.float()
        pc = torch.einsum("bij,bnj->bni", w2c_b[:, :3, :3], xyz_a) + w2c_b[:, None, :3, 3]
        uv = torch.einsum("bij,bnj->bni", K_b, pc)
    z = pc[..., 2]
    u = (uv[..., 0] / uv[..., 2].clamp_min(1e-9)).floor()
    v = (uv[..., 1] / uv[..., 2].clamp_min(1e-9)).floor()
    inside = valid_a & (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    ui, vi = torch.where(inside, u, 0).long(), torch.where(inside, v, 0).long()
    d = torch.where(inside, depth_b.flatten(1).gather(1, vi * W + ui), 0)
    ok = inside & (d > 0) & ((z - d).abs() < tol)  # lands on the object and is the visible surface
    return ok, (vi // stride) * w + (ui // stride)


def view_correspondences(xyz_a: torch.Tensor, valid_a: torch.Tensor, K_b: torch.Tensor, w2c_b: torch.Tensor,
                         depth_b: torch.Tensor, stride: int, tol: float = 0.02) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches of view a (flattened h*w) and the patches of view b that see the same 3D point.

    xyz_a (n,3), valid_a (n,), K_b (3,3), w2c_b (4,4), depth_b (H,W): one pair of views of
    ``correspondence_mask``. Returns index tensors (ia, ib).
    """
    ok, ib = correspondence_mask(xyz_a[None], valid_a[None], K_b[None], w2c_b[None], depth_b[None], stride, tol)
    ia = torch.nonzero(ok[0]).squeeze(1)
    return ia, ib[0, ia]


def farthest_mask(ok: torch.Tensor, grid_w: int, m: int) -> torch.Tensor:
    """Farthest-point sampling of m of the True cells of each row of ok (B,n), in the patch grid of width grid_w,
    from each row's first True cell (every True cell where a row holds m or fewer). Returns a (B,n) bool mask.

    Batched and free of host-device synchronisation (one small kernel group per point, whatever the batch); ties go
    to the lowest index, so each row keeps the cells a one-row, one-point-at-a-time sampler keeps.
    """
    B, n = ok.shape
    cell = torch.arange(n, device=ok.device)
    pos = torch.stack([cell % grid_w, cell // grid_w], -1).float()
    dist = torch.where(ok, float("inf"), float("-inf"))  # cells off the mask are never the farthest
    last = ok.float().argmax(1)  # the first True cell
    keep = torch.zeros_like(ok)
    for _ in range(m):
        keep.scatter_(1, last[:, None], True)
        dist = torch.minimum(dist, (pos[None] - pos[last][:, None]).pow(2).sum(-1))
        last = dist.argmax(1)  # once a row's cells are all kept, this is a kept cell again (distance 0)
    return keep & ok


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


def query_view_pairs(zq: torch.Tensor, q_valid: torch.Tensor, zv_b: torch.Tensor, v_valid_b: torch.Tensor, points: int,
                     generator: torch.Generator | None = None) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Per sample: (sample, query patches, pseudo-matched patches of view b) (Eq. 13).

    zq (B,nq,c), q_valid (B,nq), zv_b (B,np,c) online features of view b, v_valid_b (B,np).
    Each sample's query patches are a uniform random subset of min(points, its valid patches): the
    valid cells of largest random key (drawn from ``generator`` on the CPU). The whole batch at once;
    one synchronisation (the per-sample counts) at the end."""
    B, nq = q_valid.shape
    key = torch.rand(B, nq, generator=generator).to(q_valid.device).masked_fill(~q_valid, -1.0)
    sel = key.topk(min(points, nq), dim=1).indices  # valid cells first (keys >= 0), in random order
    chosen = q_valid.gather(1, sel) & v_valid_b.any(1, keepdim=True)  # a prefix of each row
    with torch.no_grad():
        zs = zq.gather(1, sel[..., None].expand(-1, -1, zq.shape[-1]))
        sim = torch.einsum("bkc,bpc->bkp", zs, zv_b).masked_fill(~v_valid_b[:, None], float("-inf"))
        match = sim.argmax(-1)
    counts = chosen.sum(1).tolist()
    return [(s, sel[s, :c], match[s, :c]) for s, c in enumerate(counts) if c]


def view_view_pairs(v_valid_a: torch.Tensor, xyz_a: torch.Tensor, v_valid_b: torch.Tensor, K_b: torch.Tensor,
                    w2c_b: torch.Tensor, depth_b: torch.Tensor, stride: int, grid_w: int,
                    points: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Per sample: (sample, patches of view a, the patches of view b seeing the same 3D points),
    farthest-point sampled in a's grid. Shapes: (B,np), (B,np,3), (B,np), (B,3,3), (B,4,4), (B,H,W).
    The whole batch at once; one synchronisation (the per-sample counts) at the end."""
    ok, ib = correspondence_mask(xyz_a, v_valid_a, K_b, w2c_b, depth_b, stride)
    ok = ok & v_valid_b.gather(1, ib.clamp(0, v_valid_b.shape[1] - 1))  # b's patch must be a valid one too
    keep = farthest_mask(ok, grid_w, points)
    sample, ia = torch.nonzero(keep, as_tuple=True)  # row-major: each sample's cells together, in order
    counts = keep.sum(1).tolist()
    return [(s, a, b) for s, (a, b, c) in enumerate(zip(ia.split(counts), ib[sample, ia].split(counts), counts)) if c]


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
