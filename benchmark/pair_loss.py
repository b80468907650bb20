"""The minimal-pair loss (``--set twins=true --set pair_weight=W``, a deviation; off by default).

A batch built by ``EpochSampler`` with twin pairs holds anomalous queries next to their normal
twins (same camera, materials, light and augmentation): the two images differ only in the
anomaly. Besides each image's BCE, the pair loss asks that the anomalous member scores higher than
its twin, ``softplus(s_twin - s_anomalous)`` (a logistic ranking loss), which removes from the
gradient everything the two images share: shape, material, viewpoint, light.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_loss(logits: torch.Tensor, pair: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean ``softplus(s_twin - s_anomalous)`` over the pairs whose two members are in the batch.

    logits (B,), pair (B,) the pair id of each sample (-1 = unpaired), label (B,) 1 = anomalous.
    No complete pair in the batch: zero (still part of the graph)."""
    paired = pair >= 0
    match = (pair[:, None] == pair[None, :]) & paired[:, None] & (label[:, None] == 1) & (label[None, :] == 0)
    if not bool(match.any()):
        return logits.sum() * 0
    margin = logits[None, :] - logits[:, None]  # [a, t] = s_t - s_a
    return F.softplus(margin[match]).mean()
