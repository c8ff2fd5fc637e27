"""Point-cloud fusion: voxel downsampling and statistical outlier removal (numpy / scipy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class PointSet:
    """points (N,3) float32, colors (N,3) uint8, confidence (N,) float32, frame_id (N,) int32."""

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    frame_id: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @staticmethod
    def empty() -> PointSet:
        return PointSet(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8),
                        np.zeros(0, np.float32), np.zeros(0, np.int32))

    @staticmethod
    def concat(parts: list[PointSet]) -> PointSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            return PointSet.empty()
        return PointSet(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                          ("points", "colors", "confidence", "frame_id")))

    def subset(self, keep: np.ndarray) -> PointSet:
        return PointSet(self.points[keep], self.colors[keep], self.confidence[keep], self.frame_id[keep])


def voxel_downsample(ps: PointSet, voxel: float) -> PointSet:
    """One point per occupied voxel: mean position and colour, max confidence, min frame_id."""
    if len(ps) == 0 or voxel <= 0:
        return ps
    cell = np.floor(ps.points.astype(np.float64) / voxel).astype(np.int64)
    cell -= cell.min(0)
    dims = cell.max(0) + 1
    key = (cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]  # fits int64 for any real scene
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    counts = np.diff(np.r_[starts, ks.size]).astype(np.float64)[:, None]
    pts = np.add.reduceat(ps.points[order].astype(np.float64), starts) / counts
    col = np.add.reduceat(ps.colors[order].astype(np.float64), starts) / counts
    conf = np.maximum.reduceat(ps.confidence[order], starts)
    fid = np.minimum.reduceat(ps.frame_id[order], starts)
    return PointSet(pts.astype(np.float32), np.clip(np.rint(col), 0, 255).astype(np.uint8),
                    conf.astype(np.float32), fid.astype(np.int32))


def statistical_outliers(points: np.ndarray, k: int = 12, std_ratio: float = 2.0, workers: int = 2) -> np.ndarray:
    """Keep mask (N,) bool: mean distance to the k nearest neighbours <= mean + std_ratio * std."""
    n = len(points)
    if n <= k:
        return np.ones(n, bool)
    tree = cKDTree(points)
    dist, _ = tree.query(points, k=k + 1, workers=workers)  # first neighbour is the point itself
    mean_d = dist[:, 1:].mean(1)
    return mean_d <= mean_d.mean() + std_ratio * mean_d.std()
