"""LFD: location field descriptors (Grabner, Roth, Lepetit, 3DV 2019), Table 2's "[14]" row.

Not the light-field descriptor of Chen et al. (2003): reference [14] of the paper is *Location
Field Descriptors: single image 3D model retrieval in the wild*. A location field is an image whose
pixels hold the 3D model coordinates of the surface they see. LFD predicts the location field of
the object in a photo with a CNN, renders location fields of the 3D models, and embeds both with
one descriptor network trained with a triplet loss, so that retrieval compares geometry in a
common space. As a Table 2 baseline (paper 5.1: "we evaluate them by using the distance between
the query and reference shape embeddings to obtain the classification score after a
thresholding step"):

- the query's location field is predicted at the encoder's stride (ResNet18-FPN, as every row):
  xyz per cell plus an object mask, trained with L1 (and BCE for the mask) against the true field
  from the query's depth and camera (``query_xyz``/``query_object`` in the batch);
- the reference's location fields are its views' patch xyz (``patch_xyz``/``patch_valid``),
  exactly what the views' depth and poses give;
- one descriptor network (a small CNN, global pooling, L2-normalised embedding) embeds both;
- the anomaly score is the distance of the query's descriptor to the nearest reference view's;
  trained with a triplet loss (normal query: its own reference's closest view is the positive,
  another shape's is the negative), a margin pushing anomalous queries from their reference, and
  a BCE on ``logits = s * (distance - t)`` for the threshold (s, t learned).
Our adaptation, not the authors' code (none for this task): the same encoder and resolution as
the other rows, no pose classification stage (the nearest view plays that role).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brokenchairs.models.encoder import Encoder


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DescriptorNet(nn.Module):
    """A location field (4,h,w: xyz * mask, mask) -> an L2-normalised descriptor."""

    def __init__(self, embed: int = 128, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(_conv(4, width), _conv(width, 2 * width, 2), _conv(2 * width, 4 * width, 2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, embed))

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(field), dim=-1)


def location_field(xyz: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """xyz (...,h,w,3), mask (...,h,w) in [0,1] -> (...,4,h,w)."""
    m = mask.to(xyz.dtype)[..., None]
    return torch.cat([xyz * m, m], -1).movedim(-1, -3)


class LocationFieldDescriptors(nn.Module):
    def __init__(self, d: int = 128, embed: int = 128, margin: float = 0.5, encoder_head: str = "panoptic",
                 backbone_weights: str | None = None):
        super().__init__()
        self.encoder = Encoder(d, backbone_weights, encoder_head)
        self.field = nn.Sequential(_conv(d, d), nn.Conv2d(d, 4, 1))  # xyz + mask logit per cell
        self.descriptor = DescriptorNet(embed)
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.threshold = nn.Parameter(torch.tensor(0.5))
        self.margin = margin

    def forward(self, batch: dict) -> dict:
        f = self.field(self.encoder(batch["query"]))  # (B,4,h,w)
        xyz, mask_logit = f[:, :3].movedim(1, -1), f[:, 3]
        eq = self.descriptor(location_field(xyz, torch.sigmoid(mask_logit)))
        B, N = batch["patch_xyz"].shape[:2]
        ev = self.descriptor(location_field(batch["patch_xyz"].flatten(0, 1), batch["patch_valid"].flatten(0, 1)))
        ev = ev.view(B, N, -1)
        dist = (eq[:, None] - ev).norm(dim=-1)  # (B,N)
        nearest = dist.min(1).values
        return {"logits": self.scale * (nearest - self.threshold), "distance": nearest, "view_distance": dist,
                "eq": eq, "ev": ev, "xyz": xyz, "mask_logit": mask_logit}

    def loss(self, batch: dict, out: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        y = batch["label"].float()
        parts = {"bce": F.binary_cross_entropy_with_logits(out["logits"], y)}
        if "query_xyz" in batch:
            obj = batch["query_object"].float()
            parts["field_l1"] = ((out["xyz"] - batch["query_xyz"]).abs().sum(-1) * obj).sum() / obj.sum().clamp_min(1)
            parts["field_mask"] = F.binary_cross_entropy_with_logits(out["mask_logit"], obj)
        rows = torch.arange(len(y), device=y.device)
        pos = out["ev"][rows, batch["closest_view"]] if "closest_view" in batch else out["ev"].mean(1)
        d_pos = (out["eq"] - pos).norm(dim=-1)
        d_neg = (out["eq"] - pos.roll(1, 0)).norm(dim=-1)  # another sample's reference (another shape, mostly)
        other = batch["shape_key"] != batch["shape_key"].roll(1, 0) if "shape_key" in batch else torch.ones_like(y, dtype=torch.bool)
        normal = (1 - y) * other.float()
        parts["triplet"] = (F.relu(d_pos - d_neg + self.margin) * normal).sum() / normal.sum().clamp_min(1)
        parts["push"] = (F.relu(self.margin - d_pos) * y).sum() / y.sum().clamp_min(1)
        total = sum(parts.values())
        return total, parts
