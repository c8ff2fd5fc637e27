"""Which keyframes the semantics stage describes: the ones that show something the others have not.

Describing a keyframe (masks, two backbone passes, its share of the lifting) is most of the semantics
stage's time, and a hand-held video comes back to what it saw: a camera sweeping an arc twice gives
every view twice. A keyframe is described when at least ``min_new`` of the cloud points it sees have
been seen by fewer than ``cover`` of the keyframes chosen before it (in video order; the first one
always). Visibility: a subsample of the cloud projected into a small z-buffer of the same subsample,
so points behind a wall are not counted as seen.
"""

from __future__ import annotations

import numpy as np

from ..scene import Cameras
from .projection import project, render_depth, scale_intrinsics

__all__ = ["novel_keyframes"]


def novel_keyframes(points: np.ndarray, cameras: Cameras, min_new: float, cover: int = 2, sample: int = 40_000,
                    size: int = 96, seed: int = 0) -> np.ndarray:
    """(M,) bool: the keyframes worth describing (module doc). ``min_new`` 0 chooses every keyframe.

    points (N,3) world; size: the long side of the visibility z-buffer in pixels.
    """
    M = len(cameras)
    chosen = np.zeros(M, bool)
    if M == 0:
        return chosen
    if min_new <= 0:
        chosen[:] = True
        return chosen
    pts = np.asarray(points, np.float32)
    if len(pts) > sample:
        pts = pts[np.random.default_rng(seed).choice(len(pts), sample, replace=False)]
    W, H = cameras.image_size
    s = size / max(W, H)
    dsize = (max(8, round(W * s)), max(8, round(H * s)))
    seen = np.zeros(len(pts), np.int32)
    for f in range(M):
        K = scale_intrinsics(cameras.intrinsics[f], cameras.image_size, dsize)
        depth = render_depth(pts, K, cameras.world_from_camera[f], dsize, radius=1, max_gap=2)
        idx, u, v, z = project(pts, K, cameras.world_from_camera[f], dsize)
        d = depth[v, u]
        visible = idx[np.isfinite(d) & (z <= d * 1.05)]
        if not len(visible):
            continue
        if f == 0 or np.mean(seen[visible] < cover) >= min_new:
            chosen[f] = True
            seen[visible] += 1
    if not chosen.any():
        chosen[0] = True
    return chosen
