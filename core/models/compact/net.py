"""The compact image tower: a small ResNet on RGB + mask crops, projected into the
384-d all-MiniLM-L6-v2 text space (:mod:`core.semantics.text_encoder`).

Input ``(B, 4, S, S)`` float: RGB normalised ``(x / 255 - 0.5) / 0.25`` and a mask
channel (+1 object, -1 background, 0 everywhere when no mask is given); see
:func:`core.models.compact.preprocess.preprocess`. Output ``(B, 384)`` L2-normalised.
Random initialisation only: no pretrained weights are downloaded. ``backbone="centernet"``
selects :class:`core.models.compact.centernet_net.CenterNetCompactNet` instead (a frozen,
shipped COCO detector backbone with a trained head): build nets with :func:`core.models.compact.build.build_net`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CompactConfig", "CompactImageNet", "SigmoidLoss", "sigmoid_loss"]


@dataclass(frozen=True)
class CompactConfig:
    in_channels: int = 4
    size: int = 96
    stem: Tuple[int, int] = (24, 32)
    widths: Tuple[int, ...] = (32, 64, 128, 256)
    blocks: Tuple[int, ...] = (2, 2, 2, 2)
    head_hidden: int = 512
    dim: int = 384
    #: "resnet" (this module's CNN, random init), "centernet" (frozen pretrained backbone + head)
    #: "effnet_lite2" (frozen ImageNet EfficientNet-Lite2 + head + zero-shot ConSE:
    #: core.models.compact.effnet_net) or "ensemble" (``members`` averaged: core.models.compact.ensemble_net)
    backbone: str = "resnet"
    #: effnet_lite2 only: weight of the ImageNet classifier's ConSE embedding added to the head's
    conse_weight: float = 0.5
    #: ensemble only: the members' configs (``to_dict()`` form) and their embedding weights
    members: Tuple[Dict, ...] = ()
    member_weights: Tuple[float, ...] = ()

    def to_dict(self) -> Dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Dict) -> "CompactConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Block(nn.Module):
    """ResNet basic block ``(B, cin, H, W) -> (B, cout, H / stride, W / stride)``."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.b2.weight)
        self.short = (nn.Identity() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)), inplace=True)
        return F.relu(self.b2(self.c2(y)) + self.short(x), inplace=True)


class CompactImageNet(nn.Module):
    """``forward(x (B, 4, S, S)) -> (B, dim)`` L2-normalised embeddings."""

    def __init__(self, cfg: CompactConfig = CompactConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(_conv_bn(cfg.in_channels, cfg.stem[0], 2), _conv_bn(cfg.stem[0], cfg.stem[1], 2))
        layers = []
        cin = cfg.stem[1]
        for i, (w, n) in enumerate(zip(cfg.widths, cfg.blocks)):
            for j in range(n):
                layers.append(_Block(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(cin, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, cfg.dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 4, S, S) -> (B, widths[-1])`` pooled features."""
        return self.stages(self.stem(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.features(x)), dim=-1)


def sigmoid_loss(img: torch.Tensor, txt: torch.Tensor, t: torch.Tensor, b: torch.Tensor,
                 targets: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's L_sim (SigLIP): ``logits = t * img @ txt.T + b`` over all image-text pairs,
    binary targets (default: the identity, i.e. pair i <-> i), mean over images of the
    summed pair losses ``-log sigmoid(z_ij * logit_ij)`` with ``z = 2 * target - 1``.

    Args:
        img: ``(B, D)`` normalised image embeddings.
        txt: ``(T, D)`` normalised text embeddings.
        t, b: scalar temperature (already positive, e.g. ``exp(t')``) and bias.
        targets: ``(B, T)`` in [0, 1] (soft targets allowed).
        weights: ``(B, T)`` pair weights (0 = ignore the pair, e.g. a synonym).
    Returns:
        scalar loss.
    """
    logits = t * img @ txt.t() + b
    if targets is None:
        targets = torch.eye(img.shape[0], txt.shape[0], device=img.device, dtype=logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    if weights is not None:
        loss = loss * weights
    return loss.sum() / img.shape[0]


class SigmoidLoss(nn.Module):
    """:func:`sigmoid_loss` with a learnable ``t = exp(log_t)`` and bias ``b`` (SigLIP init: t=10, b=-10)."""

    def __init__(self, t: float = 10.0, b: float = -10.0) -> None:
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(float(t)).log())
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, img: torch.Tensor, txt: torch.Tensor, targets: torch.Tensor | None = None,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        return sigmoid_loss(img, txt, self.log_t.exp(), self.b, targets, weights)


def count_parameters(m: nn.Module, names: Sequence[str] = ()) -> int:
    return sum(p.numel() for n, p in m.named_parameters() if not names or any(n.startswith(k) for k in names))
