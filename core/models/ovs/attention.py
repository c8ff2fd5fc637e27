"""Cross-attention of one query vector per segment over a set of feature tokens.

Used twice by the fusion: the fused query F_cat attends to the scene-level CLIP3R tokens
(giving D_scene) and to the instance-level CLIP3R tokens (giving D_inst).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossAttentionBlock", "as_tokens", "masked_mean"]


def as_tokens(x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C)`` (one pooled feature) or ``(B, T, C)`` tokens -> ``(B, T, C)`` and a ``(B, T)`` bool mask
    (True = a real token). Every row must keep at least one token."""
    if x.dim() == 2:
        x = x[:, None]
    if x.dim() != 3:
        raise ValueError(f"expected (B, C) or (B, T, C) features, got {tuple(x.shape)}")
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    mask = mask.bool()
    if mask.shape != x.shape[:2]:
        raise ValueError(f"token mask {tuple(mask.shape)} does not match tokens {tuple(x.shape)}")
    if not bool(mask.any(1).all()):
        raise ValueError("every segment needs at least one unmasked token")
    return x, mask


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, C), (B, T) -> (B, C)`` mean over the unmasked tokens."""
    m = mask[..., None].to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)


class CrossAttentionBlock(nn.Module):
    """Pre-norm transformer block with a single query: ``x (B, dim)`` attends to
    ``tokens (B, T, kv_dim)`` (``mask (B, T)`` True = attend), then an MLP; residual both times.
    Returns ``(B, dim)``. No dropout inside (train and eval compute the same function)."""

    def __init__(self, dim: int, kv_dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(kv_dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        tokens, mask = as_tokens(tokens, mask)
        B, T, _ = tokens.shape
        H, dh = self.heads, x.shape[-1] // self.heads
        q = self.q(self.norm_q(x)).view(B, 1, H, dh).transpose(1, 2)  # (B, H, 1, dh)
        k, v = self.kv(self.norm_kv(tokens)).view(B, T, 2, H, dh).permute(2, 0, 3, 1, 4)  # 2 x (B, H, T, dh)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, H, 1, dh)
        x = x + self.proj(a.transpose(1, 2).reshape(B, -1))
        return x + self.mlp(self.norm_mlp(x))
