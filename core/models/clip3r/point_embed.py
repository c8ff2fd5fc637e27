"""Point embedding for L2W: a point map is cut into the same ``p x p`` patches as its image
and each patch's ``p*p*3`` coordinates are linearly projected to one decoder-width token
(a strided convolution), so geometry tokens line up one to one with image tokens.

Patches marked void (no valid point: sky, invalid depth, low confidence) get a learned
token instead, so the decoder can tell "unknown" from "at the origin".
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PointEmbed"]


class PointEmbed(nn.Module):
    """``points (B, H, W, 3)``, ``void (B, N)`` bool -> tokens ``(B, N, C)``, N = (H/p)(W/p)."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.void_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.void_token, std=0.02)

    def forward(self, points: torch.Tensor, void: torch.Tensor | None = None) -> torch.Tensor:
        x = self.proj(points.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
        if void is not None:
            x = torch.where(void[..., None].to(torch.bool), self.void_token.to(x.dtype), x)
        return x
