"""gamma: 3D positional encoding of view patches (paper 4.2): Fourier features of world xyz + MLP."""

from __future__ import annotations

import math

import torch
from torch import nn


class FourierPE3D(nn.Module):
    def __init__(self, d: int = 128, frequencies: int = 8, max_freq: float = 32.0):
        super().__init__()
        self.register_buffer("freqs", math.pi * torch.logspace(0, math.log2(max_freq), frequencies, base=2.0))
        n = 3 + 3 * 2 * frequencies
        self.mlp = nn.Sequential(nn.Linear(n, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, xyz: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """xyz (...,3), valid (...) -> (...,d); invalid patches get exactly 0 (no position)."""
        x = xyz[..., None] * self.freqs  # (...,3,F)
        feats = torch.cat([xyz, torch.sin(x).flatten(-2), torch.cos(x).flatten(-2)], dim=-1)
        return self.mlp(feats) * valid[..., None].to(xyz.dtype)
