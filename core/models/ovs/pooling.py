"""Feature-map pooling shared by the OVS inputs: per-mask averages and coarse scene tokens.

Both CLIP3R (instance- and scene-level) and DINO features reach the fusion as pooled
vectors or a few tokens, never as full maps, so the fusion's cost depends on the number
of segments, not on the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["grid_tokens", "mask_pool"]


def mask_pool(features: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Average a feature map under each mask.

    Args:
        features: ``(C, h, w)`` or ``(B, C, h, w)`` feature map (e.g. DINO patch features).
        masks: ``(K, H, W)`` or ``(B, K, H, W)`` bool / float masks at any resolution; they are
            area-resampled to ``(h, w)`` and used as soft weights, so a mask smaller than one
            patch still gets that patch's feature.
    Returns:
        pooled ``(K, C)`` / ``(B, K, C)`` and ``valid (K,)`` / ``(B, K)`` bool (False for an
        empty mask, whose row is zeros).
    """
    batched = features.dim() == 4
    if not batched:
        features, masks = features[None], masks[None]
    if masks.dim() != 4 or features.dim() != 4 or masks.shape[0] != features.shape[0]:
        raise ValueError(f"mask_pool: features {tuple(features.shape)} and masks {tuple(masks.shape)} do not match")
    B, K, H, W = masks.shape
    h, w = features.shape[-2:]
    m = masks.to(features.dtype).reshape(B * K, 1, H, W)
    # area resampling keeps partial coverage of a patch as a fractional weight
    m = F.adaptive_avg_pool2d(m, (h, w)) if (H, W) != (h, w) else m
    m = m.reshape(B, K, h * w)
    total = m.sum(-1)  # (B, K)
    valid = total > eps
    pooled = torch.einsum("bkn,bcn->bkc", m, features.flatten(2)) / total.clamp_min(eps)[..., None]
    pooled = pooled * valid[..., None]
    return (pooled, valid) if batched else (pooled[0], valid[0])


def grid_tokens(features: torch.Tensor, grid: int = 4) -> torch.Tensor:
    """Scene-level tokens: ``(B, C, h, w) -> (B, grid * grid, C)`` by adaptive average pooling.

    A few coarse tokens keep the layout of the scene for the fusion's cross-attention
    (what surrounds a segment) at a fixed, small cost.
    """
    if features.dim() != 4:
        raise ValueError(f"grid_tokens: expected (B, C, h, w), got {tuple(features.shape)}")
    return F.adaptive_avg_pool2d(features, grid).flatten(2).transpose(1, 2)
