"""CLIP injection (Ov3R, CLIP3R's I2P): the encoder tokens of a frame read that frame's
object-level CLIP features by cross-attention and add what they read,

    F_fuse = F_ViT + softmax(F_ViT F_oCLIP^T / sqrt(d)) F_oCLIP

with ``F_oCLIP`` first projected to the encoder width ``d``. ``F_oCLIP`` is given on the
patch grid: per SAM segment, the CLIP embedding of the masked segment, averaged over the
segment and upsampled to the patches it covers (see the semantics stage).

The projection is zero-initialised, so an untrained injection adds exactly nothing:
geometry weights (e.g. SLAM3R's) keep their behaviour until the injection learns.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import LayerNorm

__all__ = ["CLIPInjection"]


class CLIPInjection(nn.Module):
    """``tokens (..., N, C)``, ``clip (..., N, d_clip)``, ``valid (..., N)`` ->
    ``fused (..., N, C)``, ``delta (..., N, C)`` (``fused = tokens + delta``).

    valid marks the patches covered by a segment; the others are not attended to (their
    features are placeholders). A frame without any segment gets ``delta = 0``.
    """

    def __init__(self, enc_dim: int, clip_dim: int, zero_init: bool = True) -> None:
        super().__init__()
        # CLIP embeddings are usually unit-norm (tiny values); the norm puts them on the
        # scale of the encoder tokens before the projection
        self.norm = LayerNorm(clip_dim)
        self.proj = nn.Linear(clip_dim, enc_dim)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor, clip: torch.Tensor, valid: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if clip.shape[:-1] != tokens.shape[:-1]:
            raise ValueError(f"F_oCLIP {tuple(clip.shape)} must match the tokens {tuple(tokens.shape)} "
                             "except in the last dimension (one feature per patch)")
        f_clip = self.proj(self.norm(clip))  # (..., N, C)
        scores = tokens @ f_clip.transpose(-1, -2) / math.sqrt(tokens.shape[-1])  # (..., N, N)
        if valid is not None:
            valid = valid.to(torch.bool)
            scores = scores.masked_fill(~valid[..., None, :], float("-inf"))
            any_valid = valid.any(dim=-1)[..., None, None]
            # a frame with no valid key would give softmax(all -inf) = NaN (also in the
            # backward pass): give it finite scores, then zero weights
            scores = scores.masked_fill(~any_valid, 0.0)
            attn = scores.softmax(dim=-1) * any_valid
        else:
            attn = scores.softmax(dim=-1)
        delta = attn @ f_clip
        return tokens + delta, delta
