"""Viewpoint from dense correspondences (paper 5, "Viewpoint prediction").

For each reference view, every foreground query patch is matched to its most similar valid view
patch in beta's view-agnostic space; the view whose matches lie closest, on average, to the
query patches' own grid positions is the predicted viewpoint (a query seen from nearly the same
direction as a view has its correspondences at nearly the same pixels).
"""

from __future__ import annotations

import torch


def predict_view(zq: torch.Tensor, q_valid: torch.Tensor, zv: torch.Tensor, v_valid: torch.Tensor,
                 grid_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """zq (B,nq,c), q_valid (B,nq), zv (B,N,np,c), v_valid (B,N,np) -> (view index (B,), mean distance (B,N))."""
    sim = torch.einsum("bqc,bnpc->bnqp", zq, zv).masked_fill(~v_valid[:, :, None, :], float("-inf"))
    match = sim.argmax(-1)  # (B,N,nq)
    qpos = torch.arange(zq.shape[1], device=zq.device)
    qxy = torch.stack([qpos % grid_w, qpos // grid_w], -1).float()  # (nq,2)
    mxy = torch.stack([match % grid_w, match // grid_w], -1).float()  # (B,N,nq,2)
    dist = (mxy - qxy).norm(dim=-1)
    w = q_valid[:, None, :].float()
    mean = (dist * w).sum(-1) / w.sum(-1).clamp_min(1)
    mean = mean.masked_fill(~v_valid.any(-1), float("inf"))
    return mean.argmin(-1), mean
