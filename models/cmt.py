"""The CMT model family (paper 4): CMT, its ablations A-D, and the query-only ResNet18-FPN baselines.

Switches: ``views`` (False = query only), ``topk`` (None = standard cross-attention over all
view patches), ``vlfa``, ``pe3d``, ``sa_blocks`` (query-only self-attention blocks), ``box_head``,
``momentum`` (an EMA copy of encoder + beta for the key side of VLFA; the authors' code uses
m = 0.999; default None = off, which keeps training single-copy and cheaper).

Input dict: ``query`` (B,3,H,W) and ``views`` (B,N,3,H,W) in [-1, 1] (grayscale views cloned to 3
channels), ``patch_xyz`` (B,N,h,w,3), ``patch_valid`` (B,N,h,w); for VLFA's view-view loss also
``view_depth`` (B,N,H,W), ``view_K`` (B,N,3,3), ``view_world_to_cam`` (B,N,4,4); for the box head
``bbox`` (B,4) normalised cx,cy,w,h. Output: ``logits`` (B,), ``boxes`` (B,4) with the box head.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou_loss

from brokenchairs.models.cga import CGABlock
from brokenchairs.models.encoder import STRIDE, Encoder, query_foreground
from brokenchairs.models.pe3d import FourierPE3D
from brokenchairs.models.vlfa import Projector, query_view_loss, view_view_loss


def mlp(d: int, out: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers - 1):
        mods += [nn.Linear(d, d), nn.GELU()]
    return nn.Sequential(*mods, nn.Linear(d, out))


class CMT(nn.Module):
    def __init__(self, d: int = 128, heads: int = 8, blocks: int = 3, topk: int | None = 100, vlfa: bool = True,
                 pe3d: bool = True, views: bool = True, sa_blocks: int = 0, box_head: bool = False,
                 momentum: float | None = None, tau: float = 0.07, vlfa_weight: float = 0.5, vlfa_patches: int = 64,
                 backbone_weights: str | None = None):
        super().__init__()
        self.cfg = dict(d=d, heads=heads, blocks=blocks, topk=topk, vlfa=vlfa, pe3d=pe3d, views=views,
                        sa_blocks=sa_blocks, box_head=box_head, momentum=momentum, tau=tau)
        self.encoder = Encoder(d, backbone_weights)
        self.tok = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.normal_(self.tok, std=0.02)
        self.use_views, self.topk, self.use_vlfa, self.tau = views, topk, vlfa, tau
        self.a, self.vlfa_patches = vlfa_weight, vlfa_patches
        if views:
            self.beta = Projector(d)
            self.pe = FourierPE3D(d) if pe3d else None
            self.blocks = nn.ModuleList(CGABlock(d, heads, pe3d) for _ in range(blocks))
        else:
            layer = nn.TransformerEncoderLayer(d, heads, 4 * d, batch_first=True, norm_first=False)
            self.sa = nn.TransformerEncoder(layer, sa_blocks) if sa_blocks else None
        self.head = mlp(d, 1, 2)
        self.box = mlp(d, 4, 4) if box_head else None
        self.momentum = momentum
        if momentum is not None and views and vlfa:
            self.encoder_k, self.beta_k = copy.deepcopy(self.encoder), copy.deepcopy(self.beta)
            for p in (*self.encoder_k.parameters(), *self.beta_k.parameters()):
                p.requires_grad_(False)

    @staticmethod
    def _tokens(fmap: torch.Tensor) -> torch.Tensor:
        return fmap.flatten(2).transpose(1, 2)  # (B,d,h,w) -> (B,hw,d)

    def forward(self, batch: dict) -> dict:
        q = batch["query"]
        B = q.shape[0]
        fq = self._tokens(self.encoder(q))
        q_valid = query_foreground(q, STRIDE)
        x = torch.cat([self.tok.expand(B, -1, -1), fq], 1)
        out: dict = {"q_valid": q_valid}
        if not self.use_views:
            if self.sa is not None:
                x = self.sa(x)
                state = x[:, 0]
            else:  # plain ResNet18-FPN: mean of the foreground tokens
                w = q_valid.float()[..., None]
                state = (fq * w).sum(1) / w.sum(1).clamp_min(1)
            return self._heads(state, out)
        views = batch["views"]
        N = views.shape[1]
        fv_map = self.encoder(views.flatten(0, 1))  # shared encoder
        np_ = fv_map.shape[-1] * fv_map.shape[-2]
        fv = self._tokens(fv_map).reshape(B, N * np_, -1)
        v_valid = batch["patch_valid"].reshape(B, N * np_)
        pv = self.pe(batch["patch_xyz"].reshape(B, N * np_, 3), v_valid) if self.pe is not None else None
        zq, zv = self.beta(fq), self.beta(fv)
        sim = None
        if self.topk is not None:
            m = torch.einsum("bqc,bvc->bqv", zq, zv).masked_fill(~v_valid[:, None], float("-inf"))  # Eq. 12
            # [tok] has no patch of its own: it attends to the view patches best matched by any query patch
            tok_row = m.masked_fill(~q_valid[..., None], float("-inf")).amax(1, keepdim=True)
            sim = torch.cat([tok_row, m], 1)
        for blk in self.blocks:
            x = blk(x, fv, pv, sim, v_valid, self.topk)
        out.update(zq=zq, zv=zv.reshape(B, N, np_, -1), v_valid=v_valid.reshape(B, N, np_))
        return self._heads(x[:, 0], out)

    def _heads(self, state: torch.Tensor, out: dict) -> dict:
        out["logits"] = self.head(state).squeeze(-1)
        if self.box is not None:
            out["boxes"] = self.box(state).sigmoid()
        return out

    def loss(self, batch: dict, out: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Eq. 15 (+ the box loss when enabled); returns (total, named parts)."""
        y = batch["label"].float()
        parts = {"bce": F.binary_cross_entropy_with_logits(out["logits"], y)}
        if self.use_views and self.use_vlfa:
            zv = out["zv"]
            if self.momentum is not None:
                with torch.no_grad():
                    B, N = batch["views"].shape[:2]
                    fk = self._tokens(self.encoder_k(batch["views"].flatten(0, 1)))
                    zv = self.beta_k(fk).reshape(B, N, -1, zv.shape[-1])
            parts["va_qv"] = query_view_loss(out["zq"], out["q_valid"], zv, out["v_valid"], self.tau,
                                             self.vlfa_patches, generator)
            if "view_depth" in batch:
                parts["va_vv"] = view_view_loss(out["zv"], out["v_valid"], batch["patch_xyz"].flatten(2, 3),
                                                batch["view_depth"], batch["view_K"], batch["view_world_to_cam"],
                                                STRIDE, self.tau, self.vlfa_patches, generator)
        if self.box is not None and "bbox" in batch:
            has = batch["label"] > 0
            if has.any():
                pred, true = out["boxes"][has], batch["bbox"][has]
                parts["box_l1"] = F.l1_loss(pred, true)
                parts["box_giou"] = generalized_box_iou_loss(box_convert(pred, "cxcywh", "xyxy"),
                                                             box_convert(true, "cxcywh", "xyxy"), reduction="mean")
        total = parts["bce"]
        if "va_qv" in parts:
            total = total + self.a * parts["va_qv"] + (1 - self.a) * parts.get("va_vv", parts["va_qv"] * 0)
        total = total + parts.get("box_l1", 0) + parts.get("box_giou", 0)
        return total, parts

    @torch.no_grad()
    def momentum_update(self) -> None:
        """EMA of the key-side encoder and projector (call after each optimiser step)."""
        if self.momentum is None or not hasattr(self, "encoder_k"):
            return
        for online, key in ((self.encoder, self.encoder_k), (self.beta, self.beta_k)):
            for p, pk in zip(online.parameters(), key.parameters()):
                pk.mul_(self.momentum).add_(p.detach(), alpha=1 - self.momentum)
