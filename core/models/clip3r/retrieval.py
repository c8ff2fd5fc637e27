"""Retrieval score (SLAM3R's "correlation score"): how useful is each scene-buffer frame as
a reference for registering a new keyframe?

The I2P decoders are run for a few blocks with the new keyframe in the keyframe decoder
and the candidates as support views (see :meth:`.i2p.I2P.retrieval_tokens`); a small head
reads each candidate's support-decoder tokens and predicts a per-patch score
``1 + exp(s)`` (a confidence that the patch can be placed relative to the keyframe). A
frame's score is the patch mean mapped to [0, 1): ``(s - 1) / s``. The top-k frames become
L2W's scene frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import LayerNorm, Mlp

__all__ = ["RetrievalScorer", "top_k_frames"]


class RetrievalScorer(nn.Module):
    """Support-decoder tokens ``(B, K, N, C)`` -> per-patch scores ``(B, K, N)`` (> 1) and
    per-frame scores ``(B, K)`` in [0, 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm(dim)
        self.mlp = Mlp(dim, dim, 1)

    def patch_scores(self, tokens: torch.Tensor) -> torch.Tensor:
        return 1.0 + self.mlp(self.norm(tokens))[..., 0].clamp(max=50.0).exp()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        s = self.patch_scores(tokens).mean(dim=-1)  # (B, K)
        return (s - 1.0) / s


def top_k_frames(scores: torch.Tensor, k: int, exclude: Sequence[int] | None = None) -> torch.Tensor:
    """Indices ``(B, min(k, K'))`` of the best-scoring frames, best first.

    scores: ``(B, K)`` or ``(K,)`` (then the result is 1D). exclude: candidate indices never
    chosen (e.g. frames already in the window). Ties go to the lower index.
    """
    squeeze = scores.dim() == 1
    s = scores[None] if squeeze else scores
    s = s.clone()
    if exclude:
        s[:, list(exclude)] = float("-inf")
        n_ok = s.shape[1] - len({int(i) for i in exclude})
    else:
        n_ok = s.shape[1]
    k = max(0, min(int(k), n_ok))
    # stable descending sort: equal scores keep their index order (deterministic selection)
    idx = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
    return idx[0] if squeeze else idx
