"""Frames and object-level CLIP features as CLIP3R inputs (numpy, shared by training and the engine).

- :func:`fit_geometry` / :func:`fit_image` / :func:`fit_intrinsics`: resize a frame so that it
  covers the network size ``(H, W)`` (aspect kept), then crop the centre; the intrinsics
  follow exactly (edge-based pixel coordinates: ``u' = s u - offset``).
- :func:`to_input`: ``uint8 (..., H, W, 3)`` -> ``float32 (..., 3, H, W)`` in [-1, 1] (DUSt3R's
  normalisation, which SLAM3R's weights expect).
- :func:`patch_features`: per-pixel segments + one descriptor per segment -> F_oCLIP on the
  patch grid (each patch: the coverage-weighted mean of the descriptors of the segments in
  it) and the patches a segment covers for at least half of their pixels (``clip_valid``).
- :func:`pixel_rays`: camera rays through pixel centres, so ``depth * rays`` are the
  camera-frame points of a planar depth map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FitGeometry", "fit_geometry", "fit_image", "fit_intrinsics", "patch_features", "pixel_rays",
           "to_input"]


@dataclass(frozen=True)
class FitGeometry:
    """How a ``src`` (W, H) image maps onto the network's ``(H, W)``: resize to ``resized``
    (W, H), then crop ``(x0, y0)`` .. ``+ size``. Net pixel ``u' = sx * u - x0`` (edge-based)."""

    src: tuple[int, int]  # (W, H)
    size: tuple[int, int]  # network (H, W)
    resized: tuple[int, int]  # (W, H)
    x0: int
    y0: int

    @property
    def scale(self) -> tuple[float, float]:
        return self.resized[0] / self.src[0], self.resized[1] / self.src[1]


def fit_geometry(src_wh: tuple[int, int], size_hw: tuple[int, int]) -> FitGeometry:
    W, H = int(src_wh[0]), int(src_wh[1])
    h, w = int(size_hw[0]), int(size_hw[1])
    s = max(w / W, h / H)
    rw, rh = max(w, int(round(W * s))), max(h, int(round(H * s)))
    return FitGeometry((W, H), (h, w), (rw, rh), (rw - w) // 2, (rh - h) // 2)


def fit_image(image: np.ndarray, size_hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``(H, W, ...)`` image (uint8 RGB, depth, labels) -> the network size ``size_hw``.
    nearest: nearest-neighbour resampling (depth, labels); else area / linear."""
    import cv2

    g = fit_geometry((image.shape[1], image.shape[0]), size_hw)
    out = image
    if g.resized != g.src:
        if nearest:
            interp = cv2.INTER_NEAREST
        else:
            interp = cv2.INTER_AREA if g.resized[0] < g.src[0] else cv2.INTER_LINEAR
        out = cv2.resize(image, g.resized, interpolation=interp)
    h, w = g.size
    return np.ascontiguousarray(out[g.y0:g.y0 + h, g.x0:g.x0 + w])


def fit_intrinsics(K: np.ndarray, src_wh: tuple[int, int], size_hw: tuple[int, int]) -> np.ndarray:
    """Intrinsics ``(3, 3)`` of the source image -> those of the fitted network image."""
    g = fit_geometry(src_wh, size_hw)
    sx, sy = g.scale
    K2 = np.array(K, np.float64).copy()
    K2[0] *= sx
    K2[1] *= sy
    K2[0, 2] -= g.x0
    K2[1, 2] -= g.y0
    K2[2] = (0.0, 0.0, 1.0)
    return K2


def to_input(images: np.ndarray) -> np.ndarray:
    """``uint8 (..., H, W, 3)`` -> ``float32 (..., 3, H, W)`` in [-1, 1]."""
    x = np.asarray(images, np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def pixel_rays(K: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` float32 rays ``K^-1 (u + 0.5, v + 0.5, 1)`` (z = 1)."""
    h, w = size_hw
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], -1).astype(np.float32)


def patch_features(seg: np.ndarray, table: np.ndarray, patch: int, min_cover: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """F_oCLIP on the patch grid.

    seg: ``(H, W)`` int, 0 = no segment, ``s >= 1`` = row ``s - 1`` of ``table (S, d)``.
    Returns ``(N, d)`` float32 (row-major patches: each the pixel-coverage-weighted mean of the
    descriptors of its segments, zeros where none) and ``valid (N,)`` bool (segments cover
    at least ``min_cover`` of the patch).
    """
    H, W = seg.shape
    h, w = H // patch, W // patch
    S, d = table.shape
    seg = np.asarray(seg[:h * patch, :w * patch], np.int64)
    if S == 0:
        return np.zeros((h * w, d), np.float32), np.zeros(h * w, bool)
    seg = np.where((seg >= 0) & (seg <= S), seg, 0)
    pid = (np.arange(h)[:, None, None, None] * w + np.arange(w)[None, None, :, None])
    pid = np.broadcast_to(pid, (h, patch, w, patch)).reshape(h * patch, w * patch)
    counts = np.bincount((pid * (S + 1) + seg).ravel(), minlength=h * w * (S + 1)).reshape(h * w, S + 1)
    wts = counts[:, 1:].astype(np.float64) / float(patch * patch)  # (N, S) coverage
    cover = wts.sum(1)
    feats = (wts @ np.asarray(table, np.float64)) / np.maximum(cover, 1e-12)[:, None]
    return feats.astype(np.float32), cover >= min_cover
