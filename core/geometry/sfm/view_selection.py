"""Choose MVS source views and per-view depth ranges from the sparse SfM model."""

from __future__ import annotations

import numpy as np


def pair_scores(
    world_from_cam: np.ndarray, points: np.ndarray, visibility: list[np.ndarray],
    theta0: float = 5.0, sigma_lo: float = 1.0, sigma_hi: float = 10.0,
) -> np.ndarray:
    """(M,M) co-visibility score (MVSNet view selection): sum over shared sparse points of a
    Gaussian of the triangulation angle, favouring ~theta0 degrees and more.

    world_from_cam: (M,4,4); points: (P,3); visibility: M arrays of point indices.
    """
    m = len(visibility)
    centres = world_from_cam[:, :3, 3]
    seen = np.zeros((m, len(points)), bool)
    for i, ids in enumerate(visibility):
        seen[i, ids] = True
    scores = np.zeros((m, m))
    for i in range(m):
        for j in range(i + 1, m):
            shared = np.flatnonzero(seen[i] & seen[j])
            if shared.size == 0:
                continue
            a = centres[i] - points[shared]
            b = centres[j] - points[shared]
            cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
            theta = np.degrees(np.arccos(np.clip(cos, -1, 1)))
            sigma = np.where(theta <= theta0, sigma_lo, sigma_hi)
            scores[i, j] = scores[j, i] = np.exp(-((theta - theta0) ** 2) / (2 * sigma**2)).sum()
    return scores


def select_neighbours(scores: np.ndarray, num: int, min_score: float = 1.0) -> list[np.ndarray]:
    """Per view, up to ``num`` best other views by score (scores (M,M)); best first."""
    out = []
    for i in range(scores.shape[0]):
        order = np.argsort(-scores[i], kind="stable")
        order = order[(order != i) & (scores[i, order] >= min_score)]
        out.append(order[:num].astype(np.int64))
    return out


def depth_range(
    world_from_cam: np.ndarray, points: np.ndarray, ids: np.ndarray,
    fallback: tuple[float, float], pct: tuple[float, float] = (2.0, 98.0), margin: float = 1.3,
) -> tuple[float, float]:
    """(near, far) from the sparse points seen in one view (percentiles widened by ``margin``)."""
    if len(ids) < 10:
        return fallback
    cfw = np.linalg.inv(world_from_cam)
    z = (points[ids] @ cfw[:3, :3].T + cfw[:3, 3])[:, 2]
    z = z[z > 0]
    if len(z) < 10:
        return fallback
    lo, hi = np.percentile(z, pct)
    return float(lo / margin), float(hi * margin)
