"""Two compact towers averaged (``CompactConfig.backbone="ensemble"``): the from-scratch CNN
(:class:`core.models.compact.net.CompactImageNet`, at its 96 px) and the head on the frozen
COCO backbone (:class:`core.models.compact.centernet_net.CenterNetCompactNet`, at ``cfg.size``).

They fail on different objects (one learnt the renders' appearance, the other inherits
features from photographs), so the normalised mean of their embeddings beats either alone
(measured in ``MODEL_CARD.md``). Built from two trained files by :func:`merge`; nothing is
trained jointly. Input ``(B, 4, S, S)`` as :func:`core.models.compact.preprocess.preprocess`
makes it for ``S = cfg.size``; the CNN gets it resized to its own input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import torch
import torch.nn.functional as F
from torch import nn

from .centernet_net import CenterNetCompactNet
from .net import CompactConfig, CompactImageNet

__all__ = ["EnsembleCompactNet", "merge", "CNN_SIZE"]

#: the from-scratch CNN's input size (compact_v1-v3)
CNN_SIZE = 96


class EnsembleCompactNet(nn.Module):
    """``forward(x (B, 4, S, S)) -> (B, dim)``: ``normalize(mean(cnn(x_96), pre(x)))``."""

    def __init__(self, cfg: CompactConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cnn = CompactImageNet(CompactConfig(size=CNN_SIZE, dim=cfg.dim))
        self.pre = CenterNetCompactNet(CompactConfig(size=cfg.size, head_hidden=cfg.head_hidden, dim=cfg.dim,
                                                     backbone="centernet"))

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("pre.backbone.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x96 = F.interpolate(x, size=(CNN_SIZE, CNN_SIZE), mode="bilinear", align_corners=False, antialias=True)
        return F.normalize(self.cnn(x96) + self.pre(x), dim=-1)


def merge(cnn_weights: Union[str, Path], pre_weights: Union[str, Path], out: Union[str, Path]) -> Path:
    """Two shipped encoder files (a "resnet" and a "centernet" one) -> one "ensemble" file; its
    logit scale / bias are the members' means, its metadata names the members' SHA-256."""
    from ...hashing import file_sha256
    from .encoder import ImageEncoder, save_weights

    a, b = ImageEncoder.from_pretrained(cnn_weights, device="cpu"), ImageEncoder.from_pretrained(pre_weights, device="cpu")
    if a.net.cfg.backbone != "resnet" or b.net.cfg.backbone != "centernet":
        raise ValueError("merge(resnet file, centernet file)")
    net = EnsembleCompactNet(CompactConfig(size=b.net.cfg.size, head_hidden=b.net.cfg.head_hidden, backbone="ensemble"))
    net.cnn.load_state_dict(a.net.state_dict())
    net.pre.load_state_dict(b.net.state_dict())
    return save_weights(net, out, (a.logit_scale + b.logit_scale) / 2, (a.logit_bias + b.logit_bias) / 2,
                        extra={"members": f"{Path(cnn_weights).name}:{file_sha256(cnn_weights)},"
                                          f"{Path(pre_weights).name}:{file_sha256(pre_weights)}",
                               "command": f"python -m core.models.compact.ensemble_net {Path(cnn_weights).name} "
                                          f"{Path(pre_weights).name} {Path(out).name}"})


if __name__ == "__main__":
    import sys

    w = Path(__file__).resolve().parent / "weights"
    args = sys.argv[1:] or ["compact_v3.safetensors", "compact_v4.safetensors", "compact_v5.safetensors"]
    print(merge(*(p if Path(p).is_absolute() else w / p for p in args)))
