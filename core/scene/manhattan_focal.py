"""The camera's focal length from the room's straight lines: three orthogonal vanishing points.

Self-calibration in SfM finds the focal length together with the camera path, and on a walk with
little rotation it can settle in a wrong minimum (a focal length 10-15 % off, the path bent by it;
docs/experiments/geometry.md). A room says more: its walls, floor, door and window frames and most
furniture run along three orthogonal directions, and the vanishing points of three orthogonal
directions fix the focal length (for a principal point at the image centre, two finite ones suffice:
``(v1 - c) . (v2 - c) = -f^2``).

Per frame, for each candidate focal length on a grid, Manhattan frames are drawn from triples of
line segments (two lines that meet at one vanishing point give a direction, a third line a second
direction orthogonal to it), each scored by the line length that points, in the image, at one of its
three vanishing points (within a degree or two). The best frame's score, as a function of the focal
length, is the frame's curve; a frame with one vanishing point family (or two, one at infinity) has a
flat one. The curves less their medians are summed over the frames and the peak is the estimate.
Scoring in the image, not by the angle between interpretation planes and directions, matters: as the
focal length grows, every plane tends to contain the optical axis, and a 3D angle would favour it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .manhattan import line_segments

__all__ = ["FocalEstimate", "manhattan_focal"]


@dataclass
class FocalEstimate:
    """``focal``: pixels of the images given; ``frames``: frames with lines that voted; ``peak_ratio``: the
    best total score more than 10 % away from the estimate over the estimate's (1 = no peak at all)."""

    focal: float
    frames: int
    peak_ratio: float

    def as_dict(self) -> dict:
        return {"focal": float(self.focal), "frames": int(self.frames), "peak_ratio": float(self.peak_ratio)}


def _frame_lines(image: np.ndarray, max_lines: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """-> midpoints (L,2), unit directions (L,2), lengths (L,), in units of the long side about the image centre."""
    H, W = image.shape[:2]
    seg = line_segments(image)
    if len(seg) < 8:
        return None
    side = float(max(H, W))
    c = np.array([W / 2.0, H / 2.0])
    a, b = (seg[:, :2] + 0.5 - c) / side, (seg[:, 2:] + 0.5 - c) / side  # pixel centres, as COLMAP
    length = np.linalg.norm(b - a, axis=1)
    keep = np.argsort(-length)[:max_lines]
    a, b, length = a[keep], b[keep], length[keep]
    return (a + b) / 2, (b - a) / length[:, None], length


def _curve(lines: tuple[np.ndarray, np.ndarray, np.ndarray], triples: np.ndarray, grid: np.ndarray,
           sigma: float) -> np.ndarray:
    """(F,) the best Manhattan frame's share of the line length at each focal length of ``grid`` (F,), in
    units of the long side. triples: (T,3) line indices (two of one direction, one of another)."""
    mid, dirs, length = lines
    ends = np.concatenate([mid - dirs * length[:, None] / 2, mid + dirs * length[:, None] / 2], 1)
    out = np.zeros(len(grid))
    for g, f in enumerate(grid):
        a = np.hstack([ends[:, :2], np.full((len(mid), 1), f)])
        b = np.hstack([ends[:, 2:], np.full((len(mid), 1), f)])
        n = np.cross(a, b)
        n /= np.linalg.norm(n, axis=1, keepdims=True)  # interpretation planes, camera frame
        r1 = np.cross(n[triples[:, 0]], n[triples[:, 1]])
        norm = np.linalg.norm(r1, axis=1)
        ok = norm > 1e-9
        r1 = r1[ok] / norm[ok, None]
        r2 = np.cross(r1, n[triples[ok, 2]])
        r2 /= np.maximum(np.linalg.norm(r2, axis=1, keepdims=True), 1e-12)
        R = np.stack([r1, r2, np.cross(r1, r2)], 1)  # (T,3 directions,3)
        v = np.concatenate([R[..., :2], R[..., 2:] / f], 2)  # their vanishing points, homogeneous
        dx = v[:, None, :, 0] - mid[None, :, None, 0] * v[:, None, :, 2]  # (T, L, 3): midpoint -> vanishing point
        dy = v[:, None, :, 1] - mid[None, :, None, 1] * v[:, None, :, 2]
        cross = (dx * dirs[None, :, None, 1] - dy * dirs[None, :, None, 0]) ** 2
        sin2 = cross / np.maximum(dx ** 2 + dy ** 2, 1e-24)
        score = np.exp(-sin2.min(2) / (2 * sigma ** 2)) @ length
        out[g] = score.max() / length.sum()
    return out


def manhattan_focal(images: Sequence[np.ndarray], max_frames: int = 30, max_lines: int = 150, triples: int = 200,
                    min_frames: int = 5, sigma_deg: float = 1.0, seed: int = 0) -> FocalEstimate | None:
    """The focal length (pixels) of ``images`` ((H,W,3) uint8 RGB, one camera, principal point at the centre)
    from their vanishing points, or None with lines in under ``min_frames`` of them.

    At most ``max_frames`` frames evenly spread vote, each with its ``max_lines`` longest segments and
    ``triples`` Manhattan frames drawn per focal length (the same segments at every focal length).
    The grid runs from 0.3 to 2 long sides (157 to 17 degrees across it), coarse, then 0.5 % steps.
    """
    if not len(images):
        return None
    rng = np.random.default_rng(seed)
    pick = np.unique(np.linspace(0, len(images) - 1, min(max_frames, len(images))).round().astype(int))
    frames = []
    for i in pick:
        lines = _frame_lines(np.asarray(images[i]), max_lines)
        if lines is None:
            continue
        p = lines[2] / lines[2].sum()
        t = rng.choice(len(p), (triples, 3), p=p)
        t = t[(t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])]
        if len(t):
            frames.append((lines, t))
    if len(frames) < min_frames:
        return None
    sigma = np.sin(np.radians(sigma_deg))

    def total(grid: np.ndarray) -> np.ndarray:
        curves = np.array([_curve(lines, t, grid, sigma) for lines, t in frames])
        return (curves - np.median(curves, 1, keepdims=True)).sum(0)

    coarse = np.exp(np.linspace(np.log(0.3), np.log(2.0), 40))  # ~5 % apart
    tot = total(coarse)
    k = int(np.argmax(tot))
    far = np.abs(np.log(coarse / coarse[k])) > 0.1
    ratio = float(tot[far].max() / tot[k]) if tot[k] > 0 and far.any() else 1.0
    fine = coarse[k] * np.exp(np.linspace(-0.06, 0.06, 25))
    f = float(fine[int(np.argmax(total(fine)))])
    side = float(max(np.asarray(images[0]).shape[:2]))
    return FocalEstimate(f * side, len(frames), ratio)
