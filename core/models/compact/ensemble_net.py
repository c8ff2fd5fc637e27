"""Compact encoders averaged (``CompactConfig.backbone="ensemble"``): two or more trained compact
towers, each at its own input size, whose embeddings are mixed by fixed weights.

Members trained on different backbones fail on different objects (compact_v4's COCO detector
features, compact_v7's ImageNet classifier features), so their weighted mean generalises better
to furniture neither saw than either alone (measured in ``MODEL_CARD.md``). Built from trained
files by :func:`core.models.compact.merge.merge`; nothing is trained jointly. The file stores each member's trainable state
under ``members.<i>.`` and its config in ``CompactConfig.members``; frozen backbones stay where
each member's own loader finds them (committed or installed).

Input ``(B, 4, S, S)`` as :func:`core.models.compact.preprocess.preprocess` makes it for
``S = cfg.size`` (the largest member's); a smaller member gets it resized to its own size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from .net import CompactConfig

__all__ = ["EnsembleCompactNet"]


class EnsembleCompactNet(nn.Module):
    """``forward(x (B, 4, S, S)) -> (B, dim)``: ``normalize(sum_i w_i * member_i(resize(x, S_i)))``."""

    def __init__(self, cfg: CompactConfig, members: Sequence[nn.Module]) -> None:
        """``members``: the networks ``cfg.members`` describe, in order (``build.build_net`` makes them)."""
        super().__init__()
        if len(cfg.members) < 2 or len(members) != len(cfg.members):
            raise ValueError(f"an ensemble config names at least two members and gets one network each "
                             f"({len(cfg.members)} configs, {len(members)} networks; core.models.compact.merge)")
        self.cfg = cfg
        self.members = nn.ModuleList(members)
        w = cfg.member_weights or (1.0,) * len(cfg.members)
        if len(w) != len(cfg.members) or min(w) < 0 or sum(w) <= 0:
            raise ValueError(f"ensemble member weights {w} do not fit {len(cfg.members)} members")
        self.weights = tuple(float(x) for x in w)

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Every member's state without its frozen backbone."""
        return {k: v for k, v in self.state_dict().items() if ".backbone." not in k}

    def regions(self, rgb: torch.Tensor, w: torch.Tensor, box: torch.Tensor, scale: float) -> torch.Tensor:
        """K regions of one image in one backbone pass per member: ``rgb (1, 3, H, W)`` in [0, 255],
        ``w`` / ``box`` ``(K, 1, H, W)`` object masks / context crops -> ``(K, dim)``. Each member sees
        the image with its long side at ``scale`` times its crop size (objects then appear about as
        large as in the crops it was trained on)."""
        e = 0.0
        for wt, m in zip(self.weights, self.members):
            e = e + wt * m.regions(rgb, w, box, scale)
        return F.normalize(e, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = 0.0
        for w, m in zip(self.weights, self.members):
            s = m.cfg.size
            xs = x if x.shape[-1] == s else F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                                                          antialias=True)
            e = e + w * m(xs)
        return F.normalize(e, dim=-1)
