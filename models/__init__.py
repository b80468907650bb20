"""Models of Table 2: ``build_model(name, **overrides)``, ``MODEL_NAMES``, ``spec(name)``.

| name | what |
|---|---|
| resnet18-fpn | query only, ResNet18-FPN, mean of foreground tokens |
| resnet18-fpn-sa | query only + B self-attention blocks on [tok] + tokens |
| vit | query only, small torchvision ViT |
| lfd | location field descriptors (Grabner et al. 2019): predicted vs rendered location fields |
| retrieval | global query/reference embeddings, triplet loss, score = distance |
| cmt-a | no CGA, VLFA, 3DPE: standard cross-attention over all view tokens |
| cmt-b | CGA (top-k) without VLFA and 3DPE |
| cmt-c | VLFA with standard cross-attention (no CGA, no 3DPE) |
| cmt-d | CGA + VLFA, no 3DPE |
| cmt | full: CGA + VLFA + 3DPE |
Each name's accepted overrides are in ``registry.SPECS``; any other override is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from brokenchairs.models.registry import MODEL_NAMES, REGISTRY, ModelSpec, spec

if TYPE_CHECKING:  # torch is imported on use: the CLI lists models from this package at start-up
    from torch import nn

__all__ = ["MODEL_NAMES", "REGISTRY", "ModelSpec", "spec", "build_model", "parameter_count"]


def build_model(name: str, **overrides) -> nn.Module:
    s = spec(name)
    unknown = sorted(set(overrides) - set(s.accepts))
    if unknown:
        raise ValueError(f"model {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(s.accepts)}")
    if s.family == "vit":
        from brokenchairs.models.baselines import ViTBaseline

        model = ViTBaseline(**overrides)
    elif s.family == "lfd":
        from brokenchairs.models.lfd import LocationFieldDescriptors

        model = LocationFieldDescriptors(**overrides)
    elif s.family == "retrieval":
        from brokenchairs.models.baselines import Retrieval

        model = Retrieval(**overrides)
    else:
        from brokenchairs.models.cmt import CMT

        model = CMT(**{**overrides, **s.switches})
    model.name = name
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
