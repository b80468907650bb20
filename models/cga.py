"""Correspondence-guided attention (paper Eq. 2-9): B blocks of SA on the query tokens, then
top-k sparse (or, for ablations, dense) cross-attention to the view tokens.

Eq. (3) of the paper writes SA(F-bar^v), but the text says self-attention is applied to the query
features f^q_(b); we follow the text (SA over the [tok] + query tokens, with residual and norm).
"""

from __future__ import annotations

import torch
from torch import nn

from brokenchairs.models.tkca import dense_cross_attention, topk_cross_attention


class CGABlock(nn.Module):
    def __init__(self, d: int = 128, heads: int = 8, use_pe: bool = True, ffn_mult: int = 4):
        super().__init__()
        self.heads = heads
        self.alpha = nn.Linear(2 * d if use_pe else d, d)  # Eq. 2: [F^v; P^v] -> F-bar^v
        self.use_pe = use_pe
        self.sa = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm_sa = nn.LayerNorm(d)
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d) for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.GELU(), nn.Linear(ffn_mult * d, d))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, n, d = x.shape
        return x.view(B, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x, fv, pv, sim, key_valid, topk: int | None):
        """x (B,1+nq,d) query tokens; fv, pv (B,nv,d); sim (B,1+nq,nv); key_valid (B,nv)."""
        fbar = self.alpha(torch.cat([fv, pv], -1) if self.use_pe else fv)  # Eq. 2
        x = self.norm_sa(x + self.sa(x, x, x, need_weights=False)[0])  # Eq. 3 (see module doc)
        q = self.wq(x)  # Eq. 4
        k, v = self._split(self.wk(fbar)), self._split(self.wv(fbar))  # Eq. 5
        if topk is None:
            o = dense_cross_attention(self._split(q), k, v, key_valid)
        else:
            o = topk_cross_attention(self._split(q), k, v, sim, topk)  # Eq. 6, 10-11
        o = self.wo(o.transpose(1, 2).reshape(x.shape))
        o = self.norm1(o + q)  # Eq. 7
        return self.norm2(self.ffn(o) + o)  # Eq. 8
