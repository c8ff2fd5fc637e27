"""Small synthetic videos made with the real encoder: a textured plane panned by a camera."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ov3r.core.video.writer import write_video


def texture(h: int = 480, w: int = 1600, seed: int = 0) -> np.ndarray:
    """A wide random texture with structure at several scales (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for s in (4, 16, 64):
        small = rng.random((h // s + 1, w // s + 1, 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def pan_frames(n: int, step: float, size=(240, 320), seed: int = 0) -> list[np.ndarray]:
    """Frames of a window sliding ``step`` px per frame over the texture."""
    h, w = size
    tex = texture(h, w + int(abs(step) * n) + 8, seed)
    return [tex[:, int(round(i * step)) : int(round(i * step)) + w].copy() for i in range(n)]


def make_pan_video(path: Path, n: int = 40, step: float = 6.0, fps: float = 30.0, **kw) -> Path:
    write_video(path, pan_frames(n, step), fps=fps, **kw)
    return path
