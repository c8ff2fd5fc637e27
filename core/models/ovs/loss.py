"""L_sim: the SigLIP sigmoid loss over segment-text pairs (Ov3R's training loss for the fusion).

For B segment descriptors d_i and T class-text embeddings e_j (SigLIP, Zhai et al. 2023):

    logit_ij = t * cos(d_i, e_j) + b                      t = exp(log_t) > 0, b learnable
    z_ij     = +1 if text j is segment i's class, else -1
    L        = -(1 / B) * sum_i sum_j log sigmoid(z_ij * logit_ij)

i.e. a sum over all B x T pairs divided by the number of segments (not of pairs), as in
SigLIP. Every pair is an independent binary decision, so unlike softmax contrastive losses
a segment may match no text (an "other" segment) or several (synonyms, via ``targets``).
SigLIP's initialisation t = 10, b = -10 keeps the many negatives from dominating early on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SigmoidLoss", "pair_targets", "sigmoid_loss"]


def pair_targets(labels: torch.Tensor, n_texts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class indices ``(B,)`` long (-1 = ignore the segment) -> targets ``(B, T)`` in {0, 1} and a
    ``(B,)`` bool mask of the segments that count."""
    valid = labels >= 0
    targets = torch.zeros(labels.shape[0], n_texts, device=labels.device)
    targets[valid, labels[valid]] = 1.0
    return targets, valid


def sigmoid_loss(desc: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, t: torch.Tensor | float,
                 b: torch.Tensor | float) -> torch.Tensor:
    """L_sim for one batch.

    Args:
        desc: ``(B, D)`` segment descriptors; text: ``(T, D)`` class-text embeddings. Both are
            L2-normalised here, so the logits use the cosine whatever their norms.
        labels: ``(B,)`` long class index per segment (-1 = ignore: not counted in the sum nor
            in B), or ``(B, T)`` targets in [0, 1] (several positives allowed; every row counts).
        t: positive temperature (``exp(log_t)``); b: bias.
    Returns:
        scalar: the summed pair losses divided by the number of counted segments.
    """
    logits = t * F.normalize(desc, dim=-1) @ F.normalize(text, dim=-1).t() + b  # (B, T)
    if labels.dim() == 1:
        targets, valid = pair_targets(labels, text.shape[0])
    else:
        targets, valid = labels, torch.ones(labels.shape[0], dtype=torch.bool, device=labels.device)
    # BCE-with-logits against {0, 1} == -log sigmoid(z * logit) with z = 2 * target - 1 (stable form)
    pair = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return (pair * valid[:, None]).sum() / valid.sum().clamp_min(1)


class SigmoidLoss(nn.Module):
    """:func:`sigmoid_loss` with learnable ``t = exp(log_t)`` (log-parameterised: always positive)
    and ``b``. ``forward(desc (B, D), text (T, D), labels (B,) | (B, T)) -> scalar``."""

    def __init__(self, t: float = 10.0, b: float = -10.0) -> None:
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(math.log(t)))
        self.b = nn.Parameter(torch.tensor(float(b)))

    @property
    def t(self) -> torch.Tensor:
        return self.log_t.exp()

    def forward(self, desc: torch.Tensor, text: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sigmoid_loss(desc, text, labels, self.t, self.b)

    @torch.no_grad()
    def probabilities(self, desc: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``(B, D), (T, D) -> (B, T)``: ``sigmoid(t * cos + b)``, the calibrated match probability."""
        return torch.sigmoid(self.t * F.normalize(desc, dim=-1) @ F.normalize(text, dim=-1).t() + self.b)
