"""Correspondence-guided attention (paper Eq. 2-9) in the released code's form.

The query tokens ([tok] + f^q, width d) are lifted to the attention width (heads x head_dim,
8 x 64 = 512 as released) and pass B pre-norm blocks, each: self-attention over the query tokens,
cross-attention to the view tokens, a GEGLU feed-forward, each with a residual; then they are
brought back to d. Keys and values come from the context [F^v; P^v] (the 3DPE concatenated to
the view features, paper Eq. 2: the released code feeds the concatenation straight to the
key/value projections, which subsume the paper's alpha). Cross-attention is top-k sparse
(``tkca.cross_attention``) when the caller gives top-k indices, dense otherwise. The context
comes once per view group (samples sharing their views share one key table); with
``cross=False`` a block is self-attention only (the query-only "ResNet18-FPN w/ SA blocks").
Weights are Xavier-uniform initialised, as released.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brokenchairs.models.tkca import cross_attention


class GEGLU(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * mult * dim)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(a * F.gelu(gate))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, n, _ = x.shape
        return x.view(B, n, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, group: torch.Tensor | None = None,
                idx: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention when ``context`` is None; else cross-attention to ``context`` (G,nv,c)
        key tables, sample b using table ``group[b]`` (None: table b), top-k by ``idx``."""
        q = self._split(self.to_q(x))
        if context is None:
            k, v = self._split(self.to_k(x)), self._split(self.to_v(x))
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = cross_attention(q, self.to_k(context), self.to_v(context), idx, group)
        return self.to_out(o.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int, ff_mult: int, cross: bool):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, heads, head_dim)
        self.cross = cross
        if cross:
            self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, heads, head_dim, context_dim)
        self.norm3, self.ff = nn.LayerNorm(dim), GEGLU(dim, ff_mult)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None, group: torch.Tensor | None,
                idx: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))  # Eq. 3: self-attention over [tok] + query tokens
        if self.cross:
            x = x + self.attn2(self.norm2(x), context, group, idx)  # Eq. 4-7, 10-11
        return x + self.ff(self.norm3(x))  # Eq. 8


class CGADecoder(nn.Module):
    def __init__(self, d: int = 128, heads: int = 8, head_dim: int = 64, blocks: int = 3, context_dim: int = 256,
                 ff_mult: int = 4, cross: bool = True):
        super().__init__()
        inner = heads * head_dim
        self.proj_in = nn.Linear(d, inner)
        self.blocks = nn.ModuleList(Block(inner, heads, head_dim, context_dim, ff_mult, cross) for _ in range(blocks))
        self.proj_out = nn.Linear(inner, d)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, group: torch.Tensor | None = None,
                idx: torch.Tensor | None = None) -> torch.Tensor:
        """x (B,1+nq,d) [tok] + query tokens; context (G,nv,context_dim), one per view group, sample b
        using ``group[b]`` (None: G = B); idx (B,nq,k) top-k keys or None (dense) -> (B,1+nq,d)."""
        x = self.proj_in(x)
        for blk in self.blocks:
            x = blk(x, context, group, idx)
        return self.proj_out(x)
