"""Models of Table 2 as one registry: ``build_model(name, **overrides)`` and ``MODEL_NAMES``.

| name | what |
|---|---|
| resnet18-fpn | query only, ResNet18-FPN, mean of foreground tokens |
| resnet18-fpn-sa | query only + 3 self-attention blocks on [tok] + tokens |
| vit | query only, small torchvision ViT |
| cmt-a | no CGA, VLFA, 3DPE: standard cross-attention over all view patches |
| cmt-b | CGA (top-k) without VLFA and 3DPE |
| cmt-c | VLFA with standard cross-attention (no CGA, no 3DPE) |
| cmt-d | CGA + VLFA, no 3DPE |
| cmt | full: CGA + VLFA + 3DPE |
| retrieval | global query/reference embeddings, triplet loss, score = distance |
Overrides: d, heads, blocks, topk, box_head, momentum, tau, backbone_weights, image_size (vit).
"""

from __future__ import annotations

from torch import nn

from brokenchairs.models.baselines import Retrieval, ViTBaseline
from brokenchairs.models.cmt import CMT

CONFIGS: dict[str, dict] = {
    "resnet18-fpn": {"views": False, "sa_blocks": 0},
    "resnet18-fpn-sa": {"views": False, "sa_blocks": 3},
    "vit": {},
    "cmt-a": {"topk": None, "vlfa": False, "pe3d": False},
    "cmt-b": {"topk": 100, "vlfa": False, "pe3d": False},
    "cmt-c": {"topk": None, "vlfa": True, "pe3d": False},
    "cmt-d": {"topk": 100, "vlfa": True, "pe3d": False},
    "cmt": {"topk": 100, "vlfa": True, "pe3d": True},
    "retrieval": {},
}
MODEL_NAMES = tuple(CONFIGS)
USES_VIEWS = {name: name.startswith("cmt") or name == "retrieval" for name in MODEL_NAMES}


def build_model(name: str, **overrides) -> nn.Module:
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    cfg = {**CONFIGS[name], **overrides}
    if name == "vit":
        keys = {"image_size", "patch", "layers", "heads", "width"}
        return ViTBaseline(**{k: v for k, v in cfg.items() if k in keys})
    if name == "retrieval":
        keys = {"d", "embed", "margin", "backbone_weights"}
        return Retrieval(**{k: v for k, v in cfg.items() if k in keys})
    cfg.pop("image_size", None)
    model = CMT(**cfg)
    model.name = name
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
