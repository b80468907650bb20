"""gamma: 3D positional encoding of view patches (paper 4.2): Fourier features of world xyz + MLP.

The frequencies are the released code's (NeRF's embedder: the input itself and sin/cos at
2^0 .. 2^9, 63 features for 10 bands); the paper says "Fourier encoding ... and an MLP block",
the released code maps the features with one linear layer: here a two-layer MLP (the paper's
word). Background patches, which have no 3D point, get exactly 0 (the released code encodes a
placeholder xyz of -1 for them; either way it is one constant code for "no surface here").
"""

from __future__ import annotations

import torch
from torch import nn


class FourierPE3D(nn.Module):
    def __init__(self, d: int = 128, bands: int = 10):
        super().__init__()
        self.register_buffer("freqs", 2.0 ** torch.arange(bands, dtype=torch.float32), persistent=False)
        n = 3 + 3 * 2 * bands
        self.mlp = nn.Sequential(nn.Linear(n, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, xyz: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """xyz (...,3), valid (...) -> (...,d); invalid patches get exactly 0 (no position)."""
        x = xyz[..., None] * self.freqs  # (...,3,F)
        feats = torch.cat([xyz, torch.sin(x).flatten(-2), torch.cos(x).flatten(-2)], dim=-1)
        return self.mlp(feats) * valid[..., None].to(xyz.dtype)
