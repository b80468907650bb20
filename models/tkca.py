"""Top-k sparse cross-attention (paper Eq. 10-12), and the dense attention of the ablations.

Each query token attends only to the ``k`` view tokens of highest correspondence score
``M = beta(f^q)^T beta(F^v)`` (Eq. 12; computed once per forward and shared by all blocks); the
softmax runs over q.k/sqrt(dh) of those keys. As in the released code, the [tok] row of the mask
is open: [tok] attends to every view token.

Production path: PyTorch's fused ``scaled_dot_product_attention`` with a boolean (B,1,1+nq,nv)
mask of the top-k keys, shared by every head; the fused kernels never hold an nq x nv attention
matrix per head. Measured on CPU (perf/bench_models.py --tkca): 3x faster than gathering the
k keys of every query (``gather_attention``, the textbook formulation, kept as an independent
reference for the tests), at the same memory for k * head_dim ~ nv.

Keys are held per *view group* (samples that share their views share one key table, see
``models.cmt``): ``group`` (B,) maps each sample to its table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def topk_indices(sim: torch.Tensor, k: int) -> torch.Tensor:
    """sim (B,nq,nv) -> (B,nq,min(k,nv)) indices of the best-matching keys per query."""
    return sim.topk(min(k, sim.shape[-1]), dim=-1).indices


def topk_mask(idx: torch.Tensor, nv: int) -> torch.Tensor:
    """(B,nq,kk) key indices -> (B,1,1+nq,nv) bool attention mask; row 0 ([tok]) is all True."""
    B, nq, _ = idx.shape
    keep = torch.zeros(B, 1 + nq, nv, dtype=torch.bool, device=idx.device)
    keep[:, 0] = True
    keep[:, 1:].scatter_(-1, idx, True)
    return keep[:, None]


def gather_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Reference: each query over its own kk gathered keys. q (B,h,nq,dh), k/v (B,h,nv,dh), idx (B,nq,kk)."""
    B, h, nq, dh = q.shape
    kk = idx.shape[-1]
    flat = idx.reshape(B, 1, nq * kk, 1).expand(B, h, nq * kk, dh)
    k_sel = k.gather(2, flat).view(B, h, nq, kk, dh)
    v_sel = v.gather(2, flat).view(B, h, nq, kk, dh)
    attn = torch.softmax(torch.einsum("bhqd,bhqkd->bhqk", q, k_sel) / math.sqrt(dh), dim=-1)
    return torch.einsum("bhqk,bhqkd->bhqd", attn, v_sel)


def cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor | None,
                    group: torch.Tensor | None = None) -> torch.Tensor:
    """q (B,h,1+nq,dh), k/v (G,nv,h*dh) key tables, group (B,) or None (G = B).

    Row 0 is [tok], which attends to every key; the other rows attend to their top-k keys ``idx``
    (B,nq,kk), or to every key when ``idx`` is None (ablations A and C)."""
    h = q.shape[1]
    if group is not None:
        k, v = k[group], v[group]
    k, v = (t.unflatten(-1, (h, -1)).transpose(1, 2) for t in (k, v))  # (B,h,nv,dh)
    mask = None if idx is None else topk_mask(idx, k.shape[2])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
