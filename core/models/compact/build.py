"""``build_net(cfg)``: the compact network a config's ``backbone`` names.

Above every backbone module (and the ensemble, which holds networks of the others), so none of them
needs to import its siblings.
"""

from __future__ import annotations

from torch import nn

from .centernet_net import CenterNetCompactNet
from .effnet_net import EffNetCompactNet
from .ensemble_net import EnsembleCompactNet
from .net import CompactConfig, CompactImageNet

__all__ = ["build_net"]


def build_net(cfg: CompactConfig) -> nn.Module:
    """The network ``cfg.backbone`` names: ``forward((B, 4, S, S)) -> (B, dim)`` L2-normalised."""
    if cfg.backbone == "centernet":
        return CenterNetCompactNet(cfg)
    if cfg.backbone == "ensemble":
        return EnsembleCompactNet(cfg, [build_net(CompactConfig.from_dict(dict(m))) for m in cfg.members])
    if cfg.backbone == "effnet_lite2":
        return EffNetCompactNet(cfg)
    if cfg.backbone != "resnet":
        raise ValueError(f"unknown compact backbone {cfg.backbone!r}")
    return CompactImageNet(cfg)
