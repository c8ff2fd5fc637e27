"""Crop (+ mask) -> network input of the compact image encoder. Shared by training and inference.

A crop ``(H, W, 3) uint8`` is padded to a square (centred; grey RGB, "background" in
the mask channel), resized to ``size`` (bilinear, antialiased) and normalised:
RGB ``(x / 255 - 0.5) / 0.25``; mask channel +1 on the object, -1 off it, and 0
everywhere when no mask is given.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["preprocess", "to_input", "image_at"]

ArrayOrList = Union[np.ndarray, Sequence[np.ndarray]]


def to_input(rgb: torch.Tensor, mask: Optional[torch.Tensor], size: int) -> torch.Tensor:
    """One crop: ``rgb (3, H, W) float in [0, 1]``, ``mask (H, W) float in [0, 1] | None``
    -> ``(4, size, size)`` network input."""
    _, h, w = rgb.shape
    m = (mask.float() * 2 - 1)[None] if mask is not None else torch.zeros(1, h, w, dtype=rgb.dtype)
    x = torch.cat([(rgb - 0.5) / 0.25, m.to(rgb.dtype)], 0)
    s = max(h, w)
    if s != h or s != w:
        pad_val = torch.tensor([0.0, 0.0, 0.0, -1.0 if mask is not None else 0.0], dtype=x.dtype)
        canvas = pad_val[:, None, None].expand(4, s, s).clone()
        y0, x0 = (s - h) // 2, (s - w) // 2
        canvas[:, y0:y0 + h, x0:x0 + w] = x
        x = canvas
    if s != size:
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False,
                          antialias=s > size)[0]
    return x


def preprocess(crops: ArrayOrList, masks: Optional[ArrayOrList] = None, size: int = 96) -> torch.Tensor:
    """``crops (B, H, W, 3) uint8`` (or a list of ``(H_i, W_i, 3)``), ``masks (B, H, W) bool``
    (or a list, entries may be None) -> ``(B, 4, size, size) float32``."""
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        crops = crops[None]
        masks = None if masks is None else np.asarray(masks)[None]
    out = []
    for i, c in enumerate(crops):
        c = np.asarray(c)
        if c.ndim != 3 or c.shape[2] != 3:
            raise ValueError(f"crop {i}: expected (H, W, 3) uint8, got {c.shape}")
        rgb = torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1).float() / 255.0
        m = None if masks is None else masks[i]
        if m is not None:
            m = np.asarray(m)
            if m.shape != c.shape[:2]:
                raise ValueError(f"mask {i}: shape {m.shape} != crop {c.shape[:2]}")
            m = torch.from_numpy(m.astype(np.float32))
        out.append(to_input(rgb, m, size))
    if not out:
        return torch.zeros(0, 4, size, size)
    return torch.stack(out)


def image_at(rgb: torch.Tensor, long_side: float, multiple: int = 32) -> torch.Tensor:
    """A whole image ``rgb (1, 3, H, W)`` resized (bilinear, antialiased when shrinking) so that its
    long side is about ``long_side`` and both sides are multiples of ``multiple`` (the backbones'
    stride) -> ``(1, 3, H', W')``; the aspect ratio is kept to within one stride."""
    h, w = rgb.shape[2:]
    s = long_side / max(h, w)
    hh, ww = (max(multiple, int(round(v * s / multiple)) * multiple) for v in (h, w))
    if (hh, ww) == (h, w):
        return rgb
    return F.interpolate(rgb, size=(hh, ww), mode="bilinear", align_corners=False, antialias=hh < h)
