"""The CMT model family (paper 4): CMT, its ablations A-D, and the query-only ResNet18-FPN baselines.

Switches: ``views`` (False = query only), ``topk`` (None = standard cross-attention over every
view token), ``vlfa``, ``pe3d``, ``self_attention`` (query only: ``blocks`` self-attention blocks
on [tok] + the query tokens, else the mean of the foreground tokens), ``box_head``,
``momentum`` (the EMA key encoder of VLFA; None = keys from the online model, detached),
``vlfa_query_labels``: "pseudo" (paper Eq. 13: a query patch's positive is its best match) or
"camera" (a deviation for small budgets: the positive is the view patch that sees the same 3D
point, from the query's own depth and camera -- known for synthetic training data, never used at
test time; needs ``query_xyz``/``query_xyz_valid`` in the batch, cells of the anomaly excluded);
``cell_weight`` > 0 adds a per-cell anomaly head (a deviation for small budgets, not in the paper or the
release): each query token after the decoder (the encoder's tokens for the plain ResNet18-FPN) predicts
whether its 8x8 cell touches the anomalous region (the union of the part's masks before and after the
change), a BCE over the foreground and anomalous cells weighted by ``cell_weight``; the image logit
still comes from [tok]. ``vlfa_losses`` picks Table 3's row: "both" (Eq. 15 with weight a), "query-view", "view-view" or
"none" (beta then learns nothing and top-k follows an untrained projection). ``readout``: the
heads read [tok] after the decoder ("token", paper and release) or [tok] plus the query's foreground
mean ("token+pool", a deviation for small budgets: the plain ResNet18-FPN's state as a skip around
the decoder, so a warm start from that model keeps its classifier).

One encoder pass per step, as released: the views and the queries go through the encoder in one
batch (one set of BatchNorm statistics). Views shared by several queries of a batch are encoded
once: samples with the same ``view_group`` (the dataset's id of a shape's selected views) reuse
one encoding, which changes nothing in evaluation mode and only the make-up of the BatchNorm
batch in training.

Input dict: ``query`` (B,3,H,W) and ``views`` (B,N,3,H,W) in [-1, 1] (grayscale views cloned to 3
channels), ``patch_xyz`` (B,N,h,w,3), ``patch_valid`` (B,N,h,w); optionally ``view_group`` (B,)
and ``shape_key`` (B,) int64; for VLFA's view-view loss also ``view_depth`` (B,N,H,W), ``view_K``
(B,N,3,3), ``view_world_to_cam`` (B,N,4,4); for the box head ``bbox`` (B,4) normalised cx,cy,w,h.
Output: ``logits`` (B,), ``boxes`` (B,4) with the box head; ``zq``/``zv``/``q_valid``/``v_valid``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, generalized_box_iou

from brokenchairs.models.cga import CGADecoder
from brokenchairs.models.encoder import STRIDE, Encoder, query_foreground
from brokenchairs.models.pe3d import FourierPE3D
from brokenchairs.models.registry import READOUTS
from brokenchairs.models.tkca import topk_indices
from brokenchairs.models.vlfa import Projector, pair_loss, query_view_pairs, view_view_pairs


def mlp(d: int, hidden: int, out: int, layers: int) -> nn.Sequential:
    """``layers`` linear layers with ReLU between (the released code's MLP)."""
    dims = [d] + [hidden] * (layers - 1)
    mods: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(dims[-1], out))


def unique_groups(group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first sample of each distinct group, each sample's group number); group (B,) or (B,k) rows."""
    uniq, inverse = torch.unique(group, dim=0, return_inverse=True)
    first = torch.full((len(uniq),), len(group), dtype=torch.long, device=group.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(group), device=group.device), reduce="amin")
    return first, inverse


def foreground_mean(tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B,n,d) tokens, (B,n) bool -> (B,d): the mean over the valid (foreground) tokens."""
    w = valid.float()[..., None]
    return (tokens * w).sum(1) / w.sum(1).clamp_min(1)


def own_reference(batch: dict, q_valid: torch.Tensor) -> torch.Tensor:
    """(B,nq) query cells that may be paired with the batch's views: none of a query shown with
    another shape's views (``wrong_reference``, training only)."""
    return q_valid & ~batch["wrong_reference"][:, None] if "wrong_reference" in batch else q_valid


def cell_targets(mask: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """(B,H,W) bool anomaly mask -> (B,h*w) float: 1 where a stride x stride cell touches the mask."""
    B, H, W = mask.shape
    return mask.reshape(B, H // stride, stride, W // stride, stride).any(4).any(2).flatten(1).float()


def cell_loss(cell_logits: torch.Tensor, mask: torch.Tensor, q_valid: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the cells that show the object or touch the anomaly (a missing part's cells
    may show background)."""
    target = cell_targets(mask)
    keep = (q_valid.flatten(1) | (target > 0)).float()
    bce = F.binary_cross_entropy_with_logits(cell_logits, target, reduction="none")
    return (bce * keep).sum() / keep.sum().clamp_min(1)


VLFA_QUERY_LABELS = ("pseudo", "camera")
VLFA_LOSSES = ("both", "query-view", "view-view", "none")  # Table 3's rows


class CMT(nn.Module):
    def __init__(self, d: int = 128, heads: int = 8, head_dim: int = 64, blocks: int = 3, ff_mult: int = 4,
                 topk: int | None = 100, vlfa: bool = True, pe3d: bool = True, views: bool = True, self_attention: bool = False,
                 box_head: bool = False, box_layers: int = 4, momentum: float | None = 0.999, tau: float = 0.1,
                 vlfa_weight: float = 0.5, vlfa_scale: float = 1.0, vlfa_points: int = 32, box_l1_weight: float = 5.0,
                 box_giou_weight: float = 2.0, encoder_head: str = "panoptic", proj_hidden: int = 1024,
                 proj_dim: int = 256, vlfa_query_labels: str = "pseudo", vlfa_losses: str = "both",
                 backbone_weights: str | None = None, cell_weight: float = 0.0, readout: str = "token"):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
        self.pool_skip = readout == "token+pool"
        self.encoder = Encoder(d, backbone_weights, encoder_head)
        self.tok = nn.Parameter(torch.empty(1, 1, d))
        nn.init.xavier_uniform_(self.tok.view(1, d))
        self.use_views, self.topk, self.use_vlfa, self.tau = views, topk, vlfa, tau
        self.a, self.vlfa_scale, self.vlfa_points = vlfa_weight, vlfa_scale, vlfa_points
        if vlfa_query_labels not in VLFA_QUERY_LABELS:
            raise ValueError(f"vlfa_query_labels must be one of {', '.join(VLFA_QUERY_LABELS)}, got {vlfa_query_labels!r}")
        self.query_labels = vlfa_query_labels
        if vlfa_losses not in VLFA_LOSSES:
            raise ValueError(f"vlfa_losses must be one of {', '.join(VLFA_LOSSES)}, got {vlfa_losses!r}")
        self.vlfa_losses = vlfa_losses
        self.box_weights = (box_l1_weight, box_giou_weight)
        if views:
            self.beta = Projector(d, proj_hidden, proj_dim)
            self.pe = FourierPE3D(d) if pe3d else None
            self.decoder = CGADecoder(d, heads, head_dim, blocks, 2 * d if pe3d else d, ff_mult)
        else:
            self.decoder = CGADecoder(d, heads, head_dim, blocks, d, ff_mult, cross=False) if self_attention else None
        self.head = mlp(d, 256, 1, 2)
        self.box = mlp(d, 256, 4, box_layers) if box_head else None
        self.cell_weight = cell_weight
        self.cell = mlp(d, 256, 1, 2) if cell_weight > 0 else None
        self.momentum = momentum if (views and vlfa) else None
        if self.momentum is not None:
            self.encoder_k, self.beta_k = copy.deepcopy(self.encoder), copy.deepcopy(self.beta)
            for p in (*self.encoder_k.parameters(), *self.beta_k.parameters()):
                p.requires_grad_(False)

    @staticmethod
    def _tokens(fmap: torch.Tensor) -> torch.Tensor:
        return fmap.flatten(2).transpose(1, 2)  # (B,d,h,w) -> (B,hw,d)

    def _encode(self, query: torch.Tensor, views: torch.Tensor | None, group: torch.Tensor | None):
        """One encoder batch: the distinct view sets, then the queries.

        Returns (fq (B,d,h,w), fv (G,N,d,h,w) of the G distinct view sets, first sample of each set
        (G,), each sample's set (B,))."""
        if views is None:
            return self.encoder(query), None, None, None
        B, N = views.shape[:2]
        if group is None:
            first = inverse = torch.arange(B, device=query.device)
        else:
            first, inverse = unique_groups(group)
        fmap = self.encoder(torch.cat([views[first].flatten(0, 1), query]))
        G = len(first)
        return fmap[G * N:], fmap[:G * N].unflatten(0, (G, N)), first, inverse

    def forward(self, batch: dict) -> dict:
        q = batch["query"]
        B = q.shape[0]
        q_valid = query_foreground(q, STRIDE)
        out: dict = {"q_valid": q_valid}
        fq_map, fv_map, first, inverse = self._encode(q, batch["views"] if self.use_views else None,
                                                      batch.get("view_group"))
        fq = self._tokens(fq_map)
        x = torch.cat([self.tok.expand(B, -1, -1), fq], 1)
        if not self.use_views:
            if self.decoder is None:  # plain ResNet18-FPN: mean of the foreground tokens
                return self._heads(foreground_mean(fq, q_valid), out, x[:, 1:])
            x = self.decoder(x)
            return self._heads(self._state(x, fq, q_valid), out, x[:, 1:])
        G, N = fv_map.shape[:2]
        np_ = fv_map.shape[-1] * fv_map.shape[-2]
        fv = self._tokens(fv_map.flatten(0, 1)).reshape(G, N * np_, -1)  # one row per distinct view set
        v_valid = batch["patch_valid"][first].reshape(G, N * np_)
        context = fv
        if self.pe is not None:
            context = torch.cat([fv, self.pe(batch["patch_xyz"][first].reshape(G, N * np_, 3), v_valid)], -1)
        zq, zv = self.beta(fq), self.beta(fv)
        idx = None
        if self.topk is not None:
            with torch.no_grad():  # Eq. 12, background features zeroed as released; beta learns from VLFA only
                zv_fg = (zv * v_valid[..., None])[inverse]
                idx = topk_indices(torch.einsum("bqc,bvc->bqv", zq * q_valid[..., None], zv_fg), self.topk)
        x = self.decoder(x, context, inverse, idx)
        out.update(zq=zq, zv=zv[inverse].reshape(B, N, np_, -1), v_valid=v_valid[inverse].reshape(B, N, np_))
        return self._heads(self._state(x, fq, q_valid), out, x[:, 1:])

    def _state(self, x: torch.Tensor, fq: torch.Tensor, q_valid: torch.Tensor) -> torch.Tensor:
        """[tok] after the decoder; with ``readout=token+pool`` plus the query's foreground mean (the
        plain ResNet18-FPN's state, a skip around the decoder)."""
        return x[:, 0] + foreground_mean(fq, q_valid) if self.pool_skip else x[:, 0]

    def _heads(self, state: torch.Tensor, out: dict, tokens: torch.Tensor) -> dict:
        out["logits"] = self.head(state).squeeze(-1)
        if self.cell is not None:
            out["cell_logits"] = self.cell(tokens).squeeze(-1)  # (B, h*w)
        if self.box is not None:
            out["boxes"] = self.box(state).sigmoid()
        return out

    def _keys(self, batch: dict, out: dict, b: torch.Tensor) -> torch.Tensor:
        """Key features of view b[s] of each sample s (B,np,c): the EMA copy's, or the online ones detached."""
        B = b.shape[0]
        rows = torch.arange(B, device=b.device)
        if self.momentum is None:
            return out["zv"][rows, b].detach()
        group = batch.get("view_group")
        first, inverse = unique_groups(torch.stack([group if group is not None else rows, b], 1))
        with torch.no_grad():
            fk = self._tokens(self.encoder_k(batch["views"][first, b[first]]))
            return self.beta_k(fk)[inverse]

    def loss(self, batch: dict, out: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Eq. 15, its VLFA terms x ``vlfa_scale`` (1 = paper), + the released box loss with the box
        head; returns (total, named parts: each loss unweighted)."""
        y = batch["label"].float()
        parts = {"bce": F.binary_cross_entropy_with_logits(out["logits"], y)}
        total = parts["bce"]
        if self.use_views and self.use_vlfa and self.vlfa_losses != "none":
            total = total + self.vlfa_scale * self._vlfa(batch, out, parts, generator)
        if self.box is not None and "bbox" in batch:
            B = len(y)
            pred, true = box_convert(out["boxes"], "cxcywh", "xyxy"), box_convert(batch["bbox"], "cxcywh", "xyxy")
            # released: sums over the anomalous samples, divided by the whole batch
            boxed = y * batch["has_box"].float() if "has_box" in batch else y  # a wrong reference's anomaly has no box
            parts["box_l1"] = ((out["boxes"] - batch["bbox"]).abs().sum(-1) * boxed).sum() / B
            parts["box_giou"] = ((1 - generalized_box_iou(pred, true).diagonal()) * boxed).sum() / B
            total = total + self.box_weights[0] * parts["box_l1"] + self.box_weights[1] * parts["box_giou"]
        if self.cell is not None and "mask" in batch:
            # a photo beside a wrong reference has no anomalous cell to learn: its cells are left out
            parts["cell"] = cell_loss(out["cell_logits"], batch["mask"], own_reference(batch, out["q_valid"]))
            total = total + self.cell_weight * parts["cell"]
        return total, parts

    def _vlfa(self, batch: dict, out: dict, parts: dict, generator: torch.Generator | None) -> torch.Tensor:
        zq, zv, v_valid = out["zq"], out["zv"], out["v_valid"]
        B, N, np_ = v_valid.shape
        rows = torch.arange(B, device=zq.device)
        if N < 2:
            return zq.sum() * 0
        ab = torch.stack([torch.randperm(N, generator=generator)[:2] for _ in range(B)]).to(zq.device)
        a, b = ab[:, 0], ab[:, 1]
        keys = self._keys(batch, out, b)
        shape_key = batch.get("shape_key", rows)
        total = zq.sum() * 0
        grid_w = batch["views"].shape[-1] // STRIDE
        if self.query_labels == "camera" and "query_xyz" in batch:  # ground truth from the query's depth and camera
            qpairs = view_view_pairs(batch["query_xyz_valid"].flatten(1), batch["query_xyz"].flatten(1, 2), v_valid[rows, b],
                                     batch["view_K"][rows, b], batch["view_world_to_cam"][rows, b],
                                     batch["view_depth"][rows, b], STRIDE, grid_w, self.vlfa_points)
        else:  # Eq. 13: pseudo-labels
            qpairs = query_view_pairs(zq, own_reference(batch, out["q_valid"]), zv[rows, b], v_valid[rows, b],
                                      self.vlfa_points, generator)
        qv = pair_loss(qpairs, zq, keys, shape_key, self.tau) if self.vlfa_losses != "view-view" else None
        if qv is not None:
            parts["va_qv"] = qv
            total = total + (self.a if self.vlfa_losses == "both" else 1.0) * qv
        if "view_depth" in batch and self.vlfa_losses != "query-view":
            pairs = view_view_pairs(v_valid[rows, a], batch["patch_xyz"].flatten(2, 3)[rows, a], v_valid[rows, b],
                                    batch["view_K"][rows, b], batch["view_world_to_cam"][rows, b],
                                    batch["view_depth"][rows, b], STRIDE, grid_w, self.vlfa_points)
            vv = pair_loss(pairs, zv[rows, a], keys, shape_key, self.tau)
            if vv is not None:
                parts["va_vv"] = vv
                total = total + ((1 - self.a) if self.vlfa_losses == "both" else 1.0) * vv
        return total

    @torch.no_grad()
    def momentum_update(self, momentum: float | None = None) -> None:
        """EMA of the key-side encoder and projector (call after each optimiser step); ``momentum=0``
        copies the online weights (after loading initial weights)."""
        if self.momentum is None:
            return
        m = self.momentum if momentum is None else momentum
        for online, key in ((self.encoder, self.encoder_k), (self.beta, self.beta_k)):
            keys = list(key.parameters())
            torch._foreach_mul_(keys, m)  # pk = m pk + (1 - m) p, one fused call per module (not two kernels per tensor)
            torch._foreach_add_(keys, [p.detach() for p in online.parameters()], alpha=1 - m)
