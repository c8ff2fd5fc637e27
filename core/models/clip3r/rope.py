"""2D rotary position embedding (RoPE), the variant used by CroCo / DUSt3R / SLAM3R.

Each attention head's channels are split in two halves: the first half is rotated by the
token's row index, the second by its column index. Within a half of width ``m`` the
channels pair up as ``(i, i + m/2)`` ("rotate half" layout) and pair ``i`` turns by the
angle ``pos * base**(-2i/m)``. The dot product of a rotated query and a rotated key then
depends only on their relative 2D offset, which is why the encoder needs no absolute
position embedding and works on any grid size.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RoPE2D", "grid_positions"]


def grid_positions(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Row-major token positions of an ``h x w`` patch grid: ``(h*w, 2)`` long, ``(row, col)``."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack((ys.reshape(-1), xs.reshape(-1)), dim=-1)


class RoPE2D(nn.Module):
    """Rotates queries / keys ``(..., N, D)`` by the 2D position of their token.

    Tokens are a row-major ``(h, w)`` grid (the same for every frame: all frames share one
    size), so cos / sin tables are cached per grid, head width, device and dtype.
    ``D`` must be a multiple of 4 (two halves, each made of rotated pairs).
    """

    def __init__(self, freq: float = 100.0) -> None:
        super().__init__()
        self.freq = float(freq)
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, grid: tuple[int, int], dim: int, device: torch.device, dtype: torch.dtype
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)``, each ``(h*w, dim)``, laid out like the channels they multiply."""
        key = (tuple(grid), dim, str(device), dtype)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if dim % 4:
            raise ValueError(f"2D RoPE needs a head width divisible by 4, got {dim}")
        m = dim // 2  # channels per axis
        inv = 1.0 / (self.freq ** (torch.arange(0, m, 2, dtype=torch.float64, device=device) / m))  # (m/2,)
        pos = grid_positions(grid[0], grid[1], device).to(torch.float64)  # (N, 2)
        ang = pos[:, :, None] * inv  # (N, 2, m/2): row angles, column angles
        ang = torch.cat((ang, ang), dim=-1).reshape(pos.shape[0], dim)  # (N, dim): [row | col] halves
        out = (ang.cos().to(dtype), ang.sin().to(dtype))
        if device.type != "meta":
            self._cache[key] = out
        return out

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        # per axis half [a | b] -> [-b | a]
        d = x.shape[-1]
        x = x.unflatten(-1, (2, 2, d // 4))
        return torch.stack((-x[..., 1, :], x[..., 0, :]), dim=-2).flatten(-3)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``x (..., N, D)`` with ``N = h*w`` -> same shape, rotated."""
        cos, sin = self.tables(grid, x.shape[-1], x.device, x.dtype)
        if cos.shape[0] != x.shape[-2]:
            raise ValueError(f"RoPE grid {grid} has {cos.shape[0]} tokens, input has {x.shape[-2]}")
        return x * cos + self._rotate_half(x) * sin

    def extra_repr(self) -> str:
        return f"freq={self.freq:g}"
