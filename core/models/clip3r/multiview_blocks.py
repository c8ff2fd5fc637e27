"""Multi-view decoder blocks (SLAM3R): each view's tokens attend to themselves, then read
the tokens of several *other* views by cross-attention, one read per other view, and
merge those reads by pooling over views (max or mean), then an MLP.

Pooling makes the block indifferent to how many other views there are and to their order,
so one set of weights serves a 5-view and an 11-view window. Two decoders run side by
side and exchange tokens after every block (:func:`two_way_decode`):

- I2P: the *keyframe* decoder reads all support views (pooled); each *support* decoder
  view reads the keyframe only.
- L2W: the *scene* decoder (retrieved scene frames) reads all keyframes to register; the
  *register* decoder (keyframes) reads all scene frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import CrossAttention, LayerNorm, Mlp, SelfAttention
from .rope import RoPE2D

__all__ = ["MultiViewBlock", "MultiViewDecoder", "two_way_decode", "views_to_batch"]


class MultiViewBlock(nn.Module):
    """``x (B, Vx, N, C)`` reads every view of ``mem (B, Vy, N, C)`` -> ``(B, Vx, N, C)``.

    Self-attention within each x view; cross-attention from each x view to each mem view
    (keys / values projected once per mem view); the ``Vy`` results are pooled; MLP.
    With ``pool="max"`` the output projection is applied before the max (as in SLAM3R,
    so its weights keep their meaning); with ``"mean"`` after it (identical, cheaper).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, rope: RoPE2D | None, pool: str = "max") -> None:
        super().__init__()
        if pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
        self.pool = pool
        self.norm1 = LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, rope)
        self.norm2 = LayerNorm(dim)  # queries
        self.norm_y = LayerNorm(dim)  # the other views' tokens (memory)
        self.cross_attn = CrossAttention(dim, heads, rope)
        self.norm3 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def read_views(self, x: torch.Tensor, mem: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Pooled cross-attention ``(B, Vx, N, C)`` of normalised x over the views of mem."""
        B, Vx, N, C = x.shape
        Vy = mem.shape[1]
        ca = self.cross_attn
        q = ca.queries(self.norm2(x), grid)  # (B, Vx, h, N, d)
        k, v = ca.keys_values(self.norm_y(mem), grid)  # (B, Vy, h, N, d)
        heads, d = q.shape[2], q.shape[-1]
        # Every x view reads every mem view: stack the x views along the query axis (rows of
        # the attention are independent), so one attention call per (batch, mem view) covers
        # all x views, without copying keys / values once per x view.
        q = q.permute(0, 2, 1, 3, 4).reshape(B, 1, heads, Vx * N, d)
        q = q.expand(B, Vy, heads, Vx * N, d).reshape(B * Vy, heads, Vx * N, d)
        out = ca.attend(q, k.reshape(B * Vy, heads, N, d), v.reshape(B * Vy, heads, N, d))  # (B*Vy, Vx*N, C)
        out = out.reshape(B, Vy, Vx, N, C)
        if Vy == 1:
            return ca.proj(out[:, 0])
        if self.pool == "max":
            return ca.proj(out).amax(dim=1)
        return ca.proj(out.mean(dim=1))

    def forward(self, x: torch.Tensor, mem: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        B, Vx, N, C = x.shape
        x = x + self.attn(self.norm1(x).reshape(B * Vx, N, C), grid).reshape(B, Vx, N, C)
        x = x + self.read_views(x, mem, grid)
        return x + self.mlp(self.norm3(x))


class MultiViewDecoder(nn.Module):
    """A stack of :class:`MultiViewBlock` (driven block by block by :func:`two_way_decode`)."""

    def __init__(self, depth: int, dim: int, heads: int, mlp_ratio: float, rope: RoPE2D | None,
                 pool: str = "max") -> None:
        super().__init__()
        self.blocks = nn.ModuleList([MultiViewBlock(dim, heads, mlp_ratio, rope, pool) for _ in range(depth)])

    def __len__(self) -> int:
        return len(self.blocks)


def two_way_decode(dec_a: MultiViewDecoder, dec_b: MultiViewDecoder, a: torch.Tensor, b: torch.Tensor,
                   grid: tuple[int, int], add_a: torch.Tensor | None = None, add_b: torch.Tensor | None = None,
                   depth: int | None = None, update_a_last: bool = True
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Run two decoders in lockstep; block ``i`` of each reads the other side's block ``i``
    input, so both sides see each other at the same depth.

    a: ``(B, Va, N, C)``, b: ``(B, Vb, N, C)`` embedded tokens. add_a / add_b: optional
    ``(B, V, N, C)`` added to that side's input of *every* block (L2W's point embeddings).
    depth: number of blocks to run (default all). update_a_last=False skips side a's last
    block, whose output nobody reads (retrieval only needs side b at a shallow depth).

    Returns the per-layer tokens ``[input, block 1, ..., block depth]`` of each side (the
    last entry of a is the previous one when ``update_a_last`` is False).
    """
    depth = len(dec_a) if depth is None else depth
    layers_a, layers_b = [a], [b]
    for i in range(depth):
        ia = layers_a[-1] if add_a is None else layers_a[-1] + add_a
        ib = layers_b[-1] if add_b is None else layers_b[-1] + add_b
        if update_a_last or i < depth - 1:
            layers_a.append(dec_a.blocks[i](ia, ib, grid))
        else:
            layers_a.append(layers_a[-1])
        layers_b.append(dec_b.blocks[i](ib, ia, grid))
    return layers_a, layers_b


def views_to_batch(layers: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``[(B, V, N, C), ...] -> [(B*V, N, C), ...]``: heads work on one view at a time."""
    return [t.reshape(-1, *t.shape[-2:]) for t in layers]
