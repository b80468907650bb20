"""phi: ResNet18 + feature pyramid (torchvision), d channels at stride 8 (paper 4.2).

The FPN's stride-8 level already merges the coarser levels top-down, so it is the merged map.
Weights: random, or ImageNet ResNet18 weights from a local file (``--backbone-weights PATH``, a
torchvision ``resnet18`` state dict); nothing is downloaded.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection.backbone_utils import BackboneWithFPN

from brokenchairs.errors import InputError

STRIDE = 8


class Encoder(nn.Module):
    def __init__(self, d: int = 128, weights: str | Path | None = None):
        super().__init__()
        body = resnet18(weights=None)
        if weights:
            load_resnet_weights(body, weights)
        self.fpn = BackboneWithFPN(body, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
                                   in_channels_list=[128, 256, 512], out_channels=d)
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,d,H/8,W/8)."""
        return self.fpn(x)["0"]


def load_resnet_weights(body: nn.Module, path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "backbone weights file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(path, f"not a torch state dict ({exc.__class__.__name__})") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise InputError(path, "expected a resnet18 state dict")
    missing, _ = body.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    if missing:
        raise InputError(path, f"not resnet18 weights: {len(missing)} keys missing, e.g. {missing[0]}")


def query_foreground(images: torch.Tensor, stride: int = STRIDE, white: float = 0.94) -> torch.Tensor:
    """(B,3,H,W) in [-1,1] -> (B, H/s * W/s) bool: cells holding any non-white pixel."""
    dark = (images < white).any(dim=1, keepdim=True).float()
    return (nn.functional.max_pool2d(dark, stride) > 0).flatten(1)
