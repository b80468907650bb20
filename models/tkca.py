"""Top-k sparse cross-attention (paper Eq. 10-12).

Each query token attends only to the ``topk`` view tokens with the highest similarity ``sim``
(M = beta(f^q)^T beta(F^v)); the softmax runs over q.k/sqrt(dh) of those keys. The production
path gathers the k keys/values per query: memory O(B*h*nq*k*dh), never an nq x nv matrix per
head. ``dense_topk_reference`` fills a dense matrix with -inf outside the top-k: kept only to test
the gather path against. Keys whose ``sim`` is -inf (background patches) are never attended to.
"""

from __future__ import annotations

import math

import torch


def _select(sim: torch.Tensor, topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = min(topk, sim.shape[-1])
    vals, idx = sim.topk(k, dim=-1)  # (B,nq,k)
    return vals, idx


def topk_cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sim: torch.Tensor, topk: int) -> torch.Tensor:
    """q (B,h,nq,dh), k/v (B,h,nv,dh), sim (B,nq,nv) -> (B,h,nq,dh)."""
    B, h, nq, dh = q.shape
    vals, idx = _select(sim, topk)
    kk = idx.shape[-1]
    flat = idx.reshape(B, 1, nq * kk, 1).expand(B, h, nq * kk, dh)
    k_sel = k.gather(2, flat).view(B, h, nq, kk, dh)
    v_sel = v.gather(2, flat).view(B, h, nq, kk, dh)
    logits = torch.einsum("bhqd,bhqkd->bhqk", q, k_sel) / math.sqrt(dh)
    invalid = torch.isinf(vals) & (vals < 0)  # (B,nq,k): selected background keys
    logits = logits.masked_fill(invalid[:, None], float("-inf"))
    attn = torch.softmax(logits, dim=-1)
    attn = torch.nan_to_num(attn, nan=0.0)  # a query with no valid key attends to nothing
    return torch.einsum("bhqk,bhqkd->bhqd", attn, v_sel)


def dense_topk_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sim: torch.Tensor, topk: int) -> torch.Tensor:
    """The same attention through a dense (B,h,nq,nv) matrix masked with -inf (tests only)."""
    vals, idx = _select(sim, topk)
    keep = torch.zeros_like(sim, dtype=torch.bool).scatter(-1, idx, True) & ~(torch.isinf(sim) & (sim < 0))
    logits = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~keep[:, None], float("-inf"))
    attn = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)
    return torch.einsum("bhqk,bhkd->bhqd", attn, v)


def dense_cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """Standard cross-attention over every valid key (ablations A and C). key_valid (B,nv)."""
    logits = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    return torch.einsum("bhqk,bhkd->bhqd", torch.nan_to_num(torch.softmax(logits, -1), nan=0.0), v)
