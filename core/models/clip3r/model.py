"""CLIP3R: I2P (with the shared image encoder and the CLIP injection) + L2W (with the DPT
CLIP3R-feature head), built from one :class:`.config.CLIP3RConfig`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import CLIP3RConfig, get_config
from .i2p import I2P
from .l2w import L2W
from .rope import RoPE2D

__all__ = ["CLIP3R", "FrameTokens", "count_parameters"]


@dataclass
class FrameTokens:
    """What one encoding of frames yields, kept per frame by a streaming engine."""
    tokens: torch.Tensor  # (B, V, N, C_enc) raw encoder tokens (L2W input)
    fused: torch.Tensor  # (B, V, N, C_enc) I2P decoder input (normalised + CLIP delta)
    delta: torch.Tensor | None  # (B, V, N, C_enc) CLIP delta, None without injection
    grid: tuple[int, int]  # patch grid (h, w)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())


class CLIP3R(nn.Module):
    """The two networks plus their config. Build with ``CLIP3R(get_config("small"))`` or
    ``CLIP3R.from_preset("paper", device="meta")`` (shapes only, no memory)."""

    def __init__(self, cfg: CLIP3RConfig) -> None:
        super().__init__()
        self.cfg = cfg
        rope = RoPE2D(cfg.rope_freq)  # parameter-free; one instance keeps one table cache
        self.i2p = I2P(cfg, rope)
        self.l2w = L2W(cfg, rope)

    @classmethod
    def from_preset(cls, name: str, device: str | torch.device | None = None, **overrides) -> CLIP3R:
        cfg = get_config(name, **overrides)
        if device is None:
            return cls(cfg)
        with torch.device(device):
            return cls(cfg)

    def encode_frames(self, images: torch.Tensor, clip: torch.Tensor | None = None,
                      clip_valid: torch.Tensor | None = None) -> FrameTokens:
        """Frames ``(B, V, 3, H, W)`` (+ F_oCLIP ``(B, V, N, d_clip)``) -> :class:`FrameTokens`,
        computed once per frame and reused by I2P windows, retrieval and L2W."""
        tokens, grid = self.i2p.encode(images)
        fused, delta = self.i2p.fuse(tokens, clip, clip_valid)
        return FrameTokens(tokens, fused, delta, grid)

    def parameter_counts(self) -> dict:
        return {"i2p": count_parameters(self.i2p), "l2w": count_parameters(self.l2w),
                "total": count_parameters(self)}
