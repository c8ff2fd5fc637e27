"""The shared ViT image encoder: patch-16 embedding + pre-norm transformer blocks with 2D RoPE.

It returns the *raw* (pre-norm) tokens. I2P and L2W each apply their own input LayerNorm
(as SLAM3R does, where the tokens encoded once by I2P are normalised again by L2W's own
``enc_norm``), so every frame of the video is encoded exactly once and the tokens are
reused by every window and every registration it takes part in.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import LayerNorm, Mlp, SelfAttention
from .rope import RoPE2D

__all__ = ["EncoderBlock", "PatchEmbed", "ViTEncoder"]


class PatchEmbed(nn.Module):
    """``(B, 3, H, W) -> (B, h*w, C)`` tokens (row-major) and the grid ``(h, w)``."""

    def __init__(self, patch_size: int, dim: int, in_channels: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        _, _, h, w = images.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"image size {(h, w)} is not a multiple of the patch size {p}")
        x = self.proj(images)
        return x.flatten(2).transpose(1, 2), (h // p, w // p)


class EncoderBlock(nn.Module):
    """Pre-norm ViT block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``. ``(B, N, C)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, rope: RoPE2D) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, rope)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), grid)
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """Images ``(B, 3, H, W)`` (any leading batch shape, e.g. ``(B, V, 3, H, W)``) ->
    raw tokens ``(..., N, C)`` with ``N = (H/16) * (W/16)`` and the patch grid ``(h, w)``.

    All frames of a window go through as one batch (one matmul per layer, not one per frame).
    """

    def __init__(self, patch_size: int, dim: int, depth: int, heads: int, mlp_ratio: float,
                 rope: RoPE2D) -> None:
        super().__init__()
        self.dim = dim
        self.patch_embed = PatchEmbed(patch_size, dim)
        self.blocks = nn.ModuleList([EncoderBlock(dim, heads, mlp_ratio, rope) for _ in range(depth)])

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        lead = images.shape[:-3]
        x, grid = self.patch_embed(images.reshape(-1, *images.shape[-3:]))
        for blk in self.blocks:
            x = blk(x, grid)
        return x.reshape(*lead, *x.shape[-2:]), grid
