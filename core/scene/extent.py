"""The size of a point cloud, robust to stray points: what voxel sizes and box layers are measured by."""

from __future__ import annotations

import numpy as np


def scene_extent(points: np.ndarray, lo: float = 2.0, hi: float = 98.0) -> float:
    """Robust size of a cloud: diagonal of its per-axis percentile box. points: (N,3)."""
    if len(points) == 0:
        return 0.0
    a, b = np.percentile(points, [lo, hi], axis=0)
    return float(np.linalg.norm(b - a))
