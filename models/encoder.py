"""phi: ResNet18 + feature pyramid (torchvision), d channels at stride 8 (paper 4.2).

Two heads over the same torchvision FPN (levels at strides 8, 16 and 32, top-down merged):
- ``panoptic`` (default, as the authors' released encoder ``VLFA_NetworkCNN``): each level is
  brought to stride 8 by conv3x3-BN-ReLU blocks with 2x bilinear upsampling (3 blocks at stride
  8, 1 at 16, 2 at 32, the semantic-FPN fusion of Kirillov et al.) and the three are summed;
- ``fpn``: the FPN's stride-8 level alone (it already merges the coarser levels top-down).
The released FPN also has a stride-4 level that its fusion never uses; FPN's top-down path runs
from coarse to fine, so leaving it out changes nothing else.
Weights: random, or ImageNet ResNet18 weights from a local file (``backbone_weights=PATH``, a
torchvision ``resnet18`` state dict); nothing is downloaded.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.misc import Conv2dNormActivation

from brokenchairs.errors import InputError

STRIDE = 8
ENCODER_HEADS = ("panoptic", "fpn")


class Encoder(nn.Module):
    def __init__(self, d: int = 128, weights: str | Path | None = None, head: str = "panoptic"):
        super().__init__()
        if head not in ENCODER_HEADS:
            raise ValueError(f"unknown encoder head {head!r}; known: {', '.join(ENCODER_HEADS)}")
        body = resnet18(weights=None)
        if weights:
            load_resnet_weights(body, weights)
        self.fpn = BackboneWithFPN(body, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
                                   in_channels_list=[128, 256, 512], out_channels=d)
        self.head = head
        if head == "panoptic":
            def blocks(n: int, upsample: bool) -> nn.Sequential:
                mods: list[nn.Module] = []
                for _ in range(n):
                    mods.append(Conv2dNormActivation(d, d, 3, norm_layer=nn.BatchNorm2d))
                    if upsample:
                        mods.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
                return nn.Sequential(*mods)

            self.fuse = nn.ModuleList([blocks(3, False), blocks(1, True), blocks(2, True)])
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> (B,d,H/8,W/8)."""
        levels = self.fpn(x)
        if self.head == "fpn":
            return levels["0"]
        return sum(f(levels[k]) for f, k in zip(self.fuse, ("0", "1", "2")))


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
