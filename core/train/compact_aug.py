"""Augmented crops for the compact encoder: RGBA renders -> ``(4, S, S)`` network inputs.

Per sample (numpy at the render resolution, then :func:`core.models.compact.preprocess.to_input`):
random background (solid, gradient, low-frequency noise, two-tone "wall/floor", clutter
of other renders), optional occluder (another render pasted in front; the mask keeps
only the visible part), a crop around the visible mask with a random margin, colour
jitter, grey-scale, blur / low resolution, noise, horizontal flip, and a mask mode:
no mask, mask channel, or masked crop (background greyed out + mask channel).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..models.compact.preprocess import to_input

__all__ = ["random_background", "background_bank", "augment", "augment_context", "eval_crop"]


def _lowfreq(rng: np.random.Generator, R: int, cells: int) -> np.ndarray:
    g = torch.from_numpy(rng.uniform(0, 1, (1, 3, cells, cells)).astype(np.float32))
    return F.interpolate(g, size=(R, R), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).clamp(0, 1).numpy()


def random_background(rng: np.random.Generator, R: int, rgba_pool: Optional[np.ndarray] = None) -> np.ndarray:
    """``(R, R, 3) float32`` in [0, 1]."""
    u = rng.uniform()
    if u < 0.2:
        bg = np.broadcast_to(rng.uniform(0, 1, 3).astype(np.float32), (R, R, 3)).copy()
    elif u < 0.35:
        a, b = rng.uniform(0, 1, (2, 3)).astype(np.float32)
        t = np.linspace(0, 1, R, dtype=np.float32)[:, None, None]
        bg = np.broadcast_to(a + (b - a) * t, (R, R, 3)).copy()
        if rng.uniform() < 0.5:
            bg = bg.transpose(1, 0, 2).copy()
    elif u < 0.6:
        bg = _lowfreq(rng, R, int(rng.integers(2, 9)))
    elif u < 0.8:
        # two-tone "wall over floor" with a horizon line, textured
        wall, floor = rng.uniform(0.2, 0.95, 3), rng.uniform(0.1, 0.7, 3)
        h = int(rng.uniform(0.3, 0.9) * R)
        bg = np.empty((R, R, 3), np.float32)
        bg[:h], bg[h:] = wall, floor
        bg *= 0.8 + 0.4 * _lowfreq(rng, R, int(rng.integers(4, 16))).mean(2, keepdims=True)
    else:
        bg = _lowfreq(rng, R, int(rng.integers(2, 6)))
        if rgba_pool is not None and len(rgba_pool):
            for _ in range(int(rng.integers(1, 4))):
                o = rgba_pool[int(rng.integers(len(rgba_pool)))].astype(np.float32) / 255.0
                dy, dx = rng.integers(-R // 2, R // 2 + 1, 2)
                o = np.roll(o, (int(dy), int(dx)), (0, 1))
                bg = o[..., :3] * o[..., 3:] + bg * (1 - o[..., 3:])
    if rng.uniform() < 0.3:
        bg = bg + rng.normal(0, rng.uniform(0.01, 0.06), bg.shape).astype(np.float32)
    return np.clip(bg, 0, 1).astype(np.float32)


def _bbox(m: np.ndarray) -> Tuple[int, int, int, int]:
    ys, xs = np.nonzero(m)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _crop_box(m: np.ndarray, rng: Optional[np.random.Generator], margin: float) -> Tuple[int, int, int, int]:
    R = m.shape[0]
    y0, y1, x0, x1 = _bbox(m)
    h, w = y1 - y0, x1 - x0
    if rng is None:
        my = (margin * h, margin * h)
        mx = (margin * w, margin * w)
    else:
        my = rng.uniform(-0.05, margin, 2) * h
        mx = rng.uniform(-0.05, margin, 2) * w
    y0 = max(0, int(round(y0 - my[0])))
    y1 = min(R, int(round(y1 + my[1])))
    x0 = max(0, int(round(x0 - mx[0])))
    x1 = min(R, int(round(x1 + mx[1])))
    return y0, max(y1, y0 + 2), x0, max(x1, x0 + 2)


def _jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = img * rng.uniform(0.6, 1.4)
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.6, 1.4) + mean
    grey = img.mean(2, keepdims=True)
    s = 0.0 if rng.uniform() < 0.05 else rng.uniform(0.5, 1.5)
    img = grey + (img - grey) * s
    img = img * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4)
    return img.astype(np.float32)


def background_bank(rng: np.random.Generator, R: int, n: int, pool: np.ndarray) -> np.ndarray:
    """``(n, R, R, 3) float32`` random backgrounds (drawn once per epoch, reused with flips / rolls)."""
    return np.stack([random_background(rng, R, pool) for _ in range(n)])


def augment(rgba: np.ndarray, rng: np.random.Generator, size: int, pool: np.ndarray,
            backgrounds: Optional[np.ndarray] = None) -> torch.Tensor:
    """One training input ``(4, size, size)`` from one render ``rgba (R, R, 4) uint8``;
    ``pool (P, R, R, 4) uint8``: other renders for clutter / occluders; ``backgrounds``:
    a :func:`background_bank` (default: a fresh random background)."""
    R = rgba.shape[0]
    x = rgba.astype(np.float32) / 255.0
    a = x[..., 3:]
    if backgrounds is not None and len(backgrounds):
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        k = int(rng.integers(4))
        bg = np.rot90(bg, k) if k else bg
        bg = np.roll(bg, tuple(int(v) for v in rng.integers(0, R, 2)), (0, 1))
    else:
        bg = random_background(rng, R, pool)
    img = x[..., :3] * a + bg * (1 - a)
    vis = a[..., 0]
    if rng.uniform() < 0.25 and len(pool):
        o = pool[int(rng.integers(len(pool)))].astype(np.float32) / 255.0
        y0, y1, x0, x1 = _bbox(vis > 0.5)
        cy = int(rng.uniform(y0, y1)) - R // 2
        cx = int(rng.uniform(x0, x1)) - R // 2
        sign = rng.choice([-1, 1], 2)
        o = np.roll(o, (int(cy + sign[0] * R * rng.uniform(0.2, 0.45)), int(cx + sign[1] * R * rng.uniform(0.2, 0.45))),
                    (0, 1))
        new_vis = vis * (1 - o[..., 3])
        if (new_vis > 0.5).sum() > 0.4 * (vis > 0.5).sum():
            img = o[..., :3] * o[..., 3:] + img * (1 - o[..., 3:])
            vis = new_vis
    m = vis > 0.5
    y0, y1, x0, x1 = _crop_box(m, rng, 0.3)
    return _finish(img[y0:y1, x0:x1], m[y0:y1, x0:x1], rng, size)


def augment_context(rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size: int) -> torch.Tensor:
    """One training input ``(4, size, size)`` from an in-scene crop (:mod:`core.train.compact_scene_data`):
    ``rgb (R,R,3) uint8`` with its real surroundings kept, ``mask (R,R) bool`` the instance (or a
    piece of it). Same crop / colour / mask-mode / resolution augmentations as :func:`augment`."""
    img = rgb.astype(np.float32) / 255.0
    m = np.asarray(mask, bool)
    if not m.any():
        m = np.ones_like(m)
    y0, y1, x0, x1 = _crop_box(m, rng, 0.3)
    return _finish(img[y0:y1, x0:x1], m[y0:y1, x0:x1], rng, size)


def _finish(crop: np.ndarray, mc: np.ndarray, rng: np.random.Generator, size: int) -> torch.Tensor:
    """Colour jitter, mask mode (none / mask channel / masked), noise, low resolution, flip."""
    crop = _jitter(crop, rng)
    u = rng.uniform()
    mode = "none" if u < 0.3 else ("mask" if u < 0.8 else "masked")
    if mode == "masked":
        fill = rng.uniform(0.3, 0.7) if rng.uniform() < 0.7 else 0.0
        crop = np.where(mc[..., None], crop, np.float32(fill))
    if rng.uniform() < 0.3:
        crop = crop + rng.normal(0, rng.uniform(0.01, 0.04), crop.shape).astype(np.float32)
    rgb = torch.from_numpy(np.ascontiguousarray(np.clip(crop, 0, 1).transpose(2, 0, 1)))
    mt = None if mode == "none" else torch.from_numpy(mc.astype(np.float32))
    if rng.uniform() < 0.3:  # low resolution / blur
        lo = int(rng.integers(max(8, size // 5), size))
        inp = to_input(rgb, mt, lo)
        out = F.interpolate(inp[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    else:
        out = to_input(rgb, mt, size)
    if rng.uniform() < 0.5:
        out = out.flip(-1)
    return out


def eval_crop(rgba: np.ndarray, rng: np.random.Generator, margin: float = 0.1,
              background: str = "noise") -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic-ish evaluation crop: object over a background, cropped to its mask's
    box + ``margin``. Returns ``crop (h, w, 3) uint8`` and ``mask (h, w) bool``."""
    R = rgba.shape[0]
    x = rgba.astype(np.float32) / 255.0
    a = x[..., 3:]
    bg = random_background(rng, R) if background == "noise" else np.full((R, R, 3), 0.5, np.float32)
    img = x[..., :3] * a + bg * (1 - a)
    m = a[..., 0] > 0.5
    y0, y1, x0, x1 = _crop_box(m, None, margin)
    return (np.clip(img[y0:y1, x0:x1], 0, 1) * 255 + 0.5).astype(np.uint8), m[y0:y1, x0:x1]
