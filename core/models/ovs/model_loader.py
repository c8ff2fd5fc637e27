"""Any OVS checkpoint -> its module, by the ``kind`` its metadata records.

Apart from checkpoint.py because the module classes themselves read and write checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .fusion import OvsFusion
from .point_encoder import PointEncoder

__all__ = ["load_model"]


def load_model(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Any OVS checkpoint -> its module (``PointEncoder`` or ``OvsFusion``), in eval mode."""
    ck = load_checkpoint(path, device=device)
    if ck.kind == "point_encoder":
        return PointEncoder.from_checkpoint(ck).to(device)
    if ck.kind == "fusion":
        return OvsFusion.from_checkpoint(ck).to(device)
    raise ValueError(f"{path}: unknown OVS checkpoint kind {ck.kind!r}")
