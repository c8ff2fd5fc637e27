"""DPT head (Ranftl et al., "Vision Transformers for Dense Prediction", 2021): turns tokens
read from four transformer layers into a dense full-resolution map.

Reassemble: each layer's tokens become an image on the patch grid, are projected and
resampled to 4x, 2x, 1x and 1/2x of the grid (fine layers serve detail, deep ones context).
Fusion: RefineNet-style, from coarse to fine (residual conv units, upsample, add).
Head: convs + upsampling to the input resolution.

In CLIP3R it predicts the per-pixel CLIP3R features ``(B, d_clip, H, W)`` from the L2W
decoder, and, with ``head_type="dpt"``, point maps + confidence (4 channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DPTHead"]


class ResidualConvUnit(nn.Module):
    """``(B, C, h, w) -> (B, C, h, w)``: x + conv(relu(conv(relu(x))))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """Merges the coarser path with this level's skip, then upsamples to the next level's size."""

    def __init__(self, dim: int, has_skip: bool) -> None:
        super().__init__()
        self.skip_unit = ResidualConvUnit(dim) if has_skip else None
        self.unit = ResidualConvUnit(dim)
        self.out_conv = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if skip is not None and self.skip_unit is not None:
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


def _resample(dim: int, factor: float) -> nn.Module:
    # learned up/down-sampling of the patch-grid image (transposed conv up, strided conv down)
    if factor == 1:
        return nn.Identity()
    if factor > 1:
        f = int(factor)
        return nn.ConvTranspose2d(dim, dim, kernel_size=f, stride=f)
    return nn.Conv2d(dim, dim, kernel_size=3, stride=round(1 / factor), padding=1)


class DPTHead(nn.Module):
    """Token layers -> dense map.

    forward(layers, grid, out_size): ``layers`` is the list of per-layer tokens
    ``[(B, N, C_in), ...]`` of one decoder (index 0 = its embedded input); the four
    ``hooks`` pick which layers are read. Returns ``(B, out_dim, H, W)``.
    """

    SCALES = (4.0, 2.0, 1.0, 0.5)

    def __init__(self, in_dim: int, out_dim: int, hooks: Sequence[int],
                 layer_dims: Sequence[int] = (96, 192, 384, 768), feature_dim: int = 256,
                 last_dim: int | None = None) -> None:
        super().__init__()
        if len(hooks) != 4 or len(layer_dims) != 4:
            raise ValueError("DPT reads exactly four layers")
        self.hooks = tuple(int(h) for h in hooks)
        last_dim = last_dim or max(feature_dim // 2, 32)
        self.reassemble = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_dim, ld, 1), _resample(ld, s)) for ld, s in zip(layer_dims, self.SCALES))
        self.project = nn.ModuleList(nn.Conv2d(ld, feature_dim, 3, padding=1, bias=False) for ld in layer_dims)
        # fusion[3] starts the path from the coarsest level (no skip); fusion[0] ends at 4x the grid
        self.fusion = nn.ModuleList(FusionBlock(feature_dim, has_skip=(i < 3)) for i in range(4))
        self.head_in = nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1)
        self.head_out = nn.Sequential(
            nn.Conv2d(feature_dim // 2, last_dim, 3, padding=1), nn.ReLU(), nn.Conv2d(last_dim, out_dim, 1))

    def forward(self, layers: Sequence[torch.Tensor], grid: tuple[int, int], out_size: tuple[int, int]
                ) -> torch.Tensor:
        h, w = grid
        feats: list[torch.Tensor] = []
        for k, hook in enumerate(self.hooks):
            t = layers[hook]
            img = t.transpose(-1, -2).reshape(t.shape[0], t.shape[-1], h, w)  # (B, C, h, w)
            feats.append(self.project[k](self.reassemble[k](img)))
        sizes = [f.shape[-2:] for f in feats]
        x = self.fusion[3](feats[3], None, tuple(sizes[2]))
        x = self.fusion[2](x, feats[2], tuple(sizes[1]))
        x = self.fusion[1](x, feats[1], tuple(sizes[0]))
        x = self.fusion[0](x, feats[0], (2 * sizes[0][0], 2 * sizes[0][1]))
        x = F.interpolate(self.head_in(x), size=tuple(out_size), mode="bilinear", align_corners=True)
        return self.head_out(x)
