"""Transformer building blocks shared by the encoder and the decoders: MLP, self- and
cross-attention with 2D RoPE on queries and keys.

Attention runs through ``F.scaled_dot_product_attention`` (fused kernels on CPU and CUDA).
Parameter names (``qkv``, ``proj``, ``projq`` ...) follow the ViT / CroCo convention so
that SLAM3R checkpoints map onto them one to one (see :mod:`.slam3r_keys`).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .rope import RoPE2D

__all__ = ["CrossAttention", "LayerNorm", "Mlp", "SelfAttention", "merge_heads", "split_heads"]

# eps 1e-6 as in ViT / DUSt3R (the default 1e-5 would change pretrained outputs slightly)
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(..., N, C) -> (..., heads, N, C // heads)``."""
    return x.unflatten(-1, (heads, x.shape[-1] // heads)).transpose(-3, -2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(..., heads, N, d) -> (..., N, heads * d)``."""
    return x.transpose(-3, -2).flatten(-2)


class Mlp(nn.Module):
    """``(..., C_in) -> (..., C_out)``: Linear, GELU, Linear."""

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim or in_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim or in_dim, out_dim or in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the tokens of one view: ``(B, N, C) -> (B, N, C)``."""

    def __init__(self, dim: int, heads: int, rope: RoPE2D | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), 3 * self.heads).chunk(3, dim=-3)  # each (B, heads, N, d)
        if self.rope is not None:
            q, k = self.rope(q, grid), self.rope(k, grid)
        return self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    """Multi-head cross-attention, split into its stages so a multi-view block can project
    each view's keys / values once and reuse them for every view that reads it.

    ``queries(x) (..., N, C) -> (..., heads, N, d)``; ``keys_values(y)`` likewise (two
    tensors); ``attend(q, k, v) -> (..., N, C)`` before the output projection ``proj``.
    """

    def __init__(self, dim: int, heads: int, rope: RoPE2D | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def queries(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        q = split_heads(self.projq(x), self.heads)
        return self.rope(q, grid) if self.rope is not None else q

    def keys_values(self, y: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        k = split_heads(self.projk(y), self.heads)
        if self.rope is not None:
            k = self.rope(k, grid)
        return k, split_heads(self.projv(y), self.heads)

    @staticmethod
    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return merge_heads(F.scaled_dot_product_attention(q, k, v))

    def forward(self, x: torch.Tensor, y: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``x (B, Nx, C)`` reads ``y (B, Ny, C)`` (same grid) -> ``(B, Nx, C)``."""
        k, v = self.keys_values(y, grid)
        return self.proj(self.attend(self.queries(x, grid), k, v))
