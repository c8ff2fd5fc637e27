"""Compact image tower on a frozen pretrained backbone (``CompactConfig.backbone="centernet"``).

The shipped COCO detector (:class:`core.models.pretrained.centernet.CenterNetBackbone`)
is run on the RGB crop; its feature maps are pooled twice, over the whole crop and over
the object mask (the mask channel of the input), and a trained MLP projects them into the
384-d text space. Only the head trains: with a few hundred furniture models to learn from,
features learnt on COCO's 118k photos generalise to unseen models far better than a CNN
trained from scratch on the renders (measured in ``core/models/compact/MODEL_CARD.md``).

Input ``(B, 4, S, S)`` as :func:`core.models.compact.preprocess.preprocess` makes it
(RGB ``(x / 255 - 0.5) / 0.25``; mask channel +1 object / -1 background / 0 no mask),
S a multiple of 32. Output ``(B, dim)`` L2-normalised.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from ..pretrained.centernet import CenterNetBackbone
from .preprocess import image_at

__all__ = ["CenterNetCompactNet", "POOLED"]

#: feature maps pooled (channels): stride-32 top (480), detector head (128), stride-16 (88)
POOLED = {"e1": 480, "head": 128, "c11": 88}


def masked_mean(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``f (B, C, h, w)``, weights ``w (B, 1, H, W)`` in [0, 1] -> ``(B, C)`` weighted mean
    (weights area-resampled to the map; a crop without mask has uniform weights)."""
    w = F.interpolate(w, size=f.shape[2:], mode="area")
    return (f * w).sum((2, 3)) / w.sum((2, 3)).clamp_min(1e-4)


def region_mean(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One image's map ``f (1, C, h, w)``, K region weights ``w (K, 1, H, W)`` in [0, 1] -> ``(K, C)``
    weighted means (weights area-resampled to the map): :func:`masked_mean` of K regions of one pass."""
    w = F.interpolate(w, size=f.shape[2:], mode="area").flatten(1).to(f.dtype)  # (K, h*w)
    return (w @ f[0].flatten(1).t()) / w.sum(1, keepdim=True).clamp_min(1e-4)


class CenterNetCompactNet(nn.Module):
    """``forward(x (B, 4, S, S)) -> (B, dim)``; ``backbone`` frozen, ``head`` trained."""

    def __init__(self, cfg) -> None:
        super().__init__()
        if cfg.size % 32:
            raise ValueError(f"input size {cfg.size} must be a multiple of 32 for the centernet backbone")
        self.cfg = cfg
        self.backbone = CenterNetBackbone(outputs=tuple(POOLED))  # no class heatmap: unused here
        n = 2 * POOLED["e1"] + 2 * POOLED["head"] + POOLED["c11"]
        self.norm = nn.LayerNorm(n)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(n, cfg.head_hidden), nn.GELU(),
                                  nn.Linear(cfg.head_hidden, cfg.dim))

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """The state without the (shipped, frozen) backbone."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 4, S, S) -> (B, 1304)`` pooled backbone features."""
        rgb = (x[:, :3] * 0.25 + 0.5).clamp(0, 1) * 255.0
        w = (x[:, 3:4] + 1) * 0.5  # +1 -> 1, -1 -> 0, no mask (0) -> 0.5 everywhere
        with torch.no_grad():
            o = self.backbone(rgb)
        return torch.cat([o["e1"].mean((2, 3)), masked_mean(o["e1"], w), o["head"].mean((2, 3)),
                          masked_mean(o["head"], w), masked_mean(o["c11"], w)], 1)

    def region_features(self, rgb: torch.Tensor, w: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """One backbone pass over a whole image ``rgb (1, 3, H, W)`` in [0, 255] (H, W multiples of 32),
        pooled over K regions: ``w (K, 1, H', W')`` object masks, ``box (K, 1, H', W')`` each object's
        context crop -> ``(K, 1304)``, the features :meth:`features` takes from K crops."""
        with torch.no_grad():
            o = self.backbone(rgb)
        return torch.cat([region_mean(o["e1"], box), region_mean(o["e1"], w), region_mean(o["head"], box),
                          region_mean(o["head"], w), region_mean(o["c11"], w)], 1)

    def regions(self, rgb: torch.Tensor, w: torch.Tensor, box: torch.Tensor, scale: float) -> torch.Tensor:
        """K regions of one image: ``rgb (1, 3, H, W)`` in [0, 255], ``w`` / ``box`` ``(K, 1, H, W)``
        -> ``(K, dim)`` L2-normalised, the image seen with its long side at ``scale`` crop sizes."""
        rgb = image_at(rgb, scale * self.cfg.size)
        return F.normalize(self.head(self.norm(self.region_features(rgb, w, box))), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.norm(self.features(x))), dim=-1)
