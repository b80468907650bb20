"""Query-only ViT and the retrieval baseline of Table 2.

``ViTBaseline``: torchvision's VisionTransformer in a small configuration (6 layers, 8 heads,
256 wide, patch 16), query image only.
``Retrieval``: the paper's image-to-shape retrieval row in spirit (Lin et al., ICCV 2021, embed
images and shapes in one space by metric learning; score = the distance after a threshold), not
their model: no category-level contrastive term, no shape encoder of their own (the reference is
the mean embedding of its views under the same ResNet18-FPN encoder), one projection per modality.
Trained with a triplet loss (anchor = normal query, positive = its reference, negative = another
sample's reference in the batch) plus a margin that pushes anomalous queries away from their own
reference; the anomaly score is the distance (``logits`` = s * (distance - t), s and t learned,
so the score is monotone in the distance). For the geometry-aware retrieval row see ``lfd``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VisionTransformer

from brokenchairs.models.encoder import STRIDE, Encoder, query_foreground


class ViTBaseline(nn.Module):
    def __init__(self, image_size: int = 256, patch: int = 16, layers: int = 6, heads: int = 8, width: int = 256):
        super().__init__()
        self.vit = VisionTransformer(image_size=image_size, patch_size=patch, num_layers=layers, num_heads=heads,
                                     hidden_dim=width, mlp_dim=2 * width, num_classes=1)

    def forward(self, batch: dict) -> dict:
        return {"logits": self.vit(batch["query"]).squeeze(-1)}

    def loss(self, batch, out, generator=None):
        bce = F.binary_cross_entropy_with_logits(out["logits"], batch["label"].float())
        return bce, {"bce": bce}


class Retrieval(nn.Module):
    def __init__(self, d: int = 128, embed: int = 128, margin: float = 0.5, backbone_weights: str | None = None):
        super().__init__()
        self.encoder = Encoder(d, backbone_weights)
        self.proj_q = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, embed))
        self.proj_v = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, embed))
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.threshold = nn.Parameter(torch.tensor(0.7))
        self.margin = margin

    def forward(self, batch: dict) -> dict:
        q, views = batch["query"], batch["views"]
        B, N = views.shape[:2]
        fq = self.encoder(q).flatten(2)  # (B,d,hw)
        w = query_foreground(q, STRIDE).float()[:, None]
        eq = F.normalize(self.proj_q((fq * w).sum(-1) / w.sum(-1).clamp_min(1)), dim=-1)
        fv = self.encoder(views.flatten(0, 1)).flatten(2)
        valid = batch["patch_valid"].flatten(0, 1).flatten(1).float()[:, None]
        pooled = ((fv * valid).sum(-1) / valid.sum(-1).clamp_min(1)).view(B, N, -1).mean(1)
        ev = F.normalize(self.proj_v(pooled), dim=-1)
        dist = (eq - ev).norm(dim=-1)
        return {"logits": self.scale * (dist - self.threshold), "distance": dist, "eq": eq, "ev": ev}

    def loss(self, batch, out, generator=None):
        y = batch["label"].float()
        eq, ev, d = out["eq"], out["ev"], out["distance"]
        d_neg = (eq - ev.roll(1, 0)).norm(dim=-1)  # another sample's reference
        normal = 1 - y
        triplet = (F.relu(d - d_neg + self.margin) * normal).sum() / normal.sum().clamp_min(1)
        push = (F.relu(self.margin - d) * y).sum() / y.sum().clamp_min(1)
        bce = F.binary_cross_entropy_with_logits(out["logits"], y)
        return triplet + push + bce, {"triplet": triplet, "push": push, "bce": bce}
