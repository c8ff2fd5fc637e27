"""Point-map heads: decoder tokens -> per-pixel 3D points + confidence.

Raw 4-channel output ``(x, y, z, c)`` is mapped as in DUSt3R / SLAM3R:
- points: the direction of ``(x, y, z)`` times ``expm1(|(x, y, z)|)``, so the network works
  in a log-like range of distances while points near the camera stay precise;
- confidence: ``1 + exp(c)`` (> 1, which the ``-alpha log C`` loss term needs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .dpt_head import DPTHead

__all__ = ["DPTPointHead", "LinearPointHead", "postprocess_points"]

# exp() of more than ~88 overflows float32; confidences beyond e^50 carry no information
_MAX_LOG_CONF = 50.0


def postprocess_points(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``raw (B, 4, H, W)`` -> ``points (B, H, W, 3)``, ``conf (B, H, W)``."""
    raw = raw.permute(0, 2, 3, 1)
    xyz = raw[..., :3]
    d = xyz.norm(dim=-1, keepdim=True)
    pts = xyz / d.clamp(min=1e-8) * torch.expm1(d)
    conf = 1.0 + raw[..., 3].clamp(max=_MAX_LOG_CONF).exp()
    return pts, conf


class LinearPointHead(nn.Module):
    """Each last-layer token predicts its ``p x p`` patch: ``(B, N, C) -> pts (B, H, W, 3), conf (B, H, W)``.

    ``proj`` outputs ``4 * p * p`` values per token in ``(channel, row, col)`` order, which
    ``pixel_shuffle`` lays out into the patch (the layout SLAM3R's linear head uses).
    """

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(dim, 4 * patch_size * patch_size)

    def forward(self, layers: Sequence[torch.Tensor], grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        # full precision under autocast (as SLAM3R): bf16 / fp16 would quantise depths to ~0.4 %
        with torch.autocast(layers[-1].device.type, enabled=False):
            t = self.proj(layers[-1].float())  # (B, N, 4 p^2)
        raw = t.transpose(1, 2).reshape(t.shape[0], -1, grid[0], grid[1])
        return postprocess_points(F.pixel_shuffle(raw, self.patch_size))


class DPTPointHead(nn.Module):
    """DPT variant of :class:`LinearPointHead` (smoother maps, more compute)."""

    def __init__(self, dim: int, patch_size: int, hooks: Sequence[int], layer_dims: Sequence[int],
                 feature_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.dpt = DPTHead(dim, 4, hooks, layer_dims, feature_dim)

    def forward(self, layers: Sequence[torch.Tensor], grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.patch_size
        with torch.autocast(layers[-1].device.type, enabled=False):
            return postprocess_points(self.dpt([t.float() for t in layers], grid, (grid[0] * p, grid[1] * p)))
