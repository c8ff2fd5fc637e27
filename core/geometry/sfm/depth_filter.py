"""Geometric-consistency filtering of depth maps (forward-backward reprojection).

A reference pixel survives when, in at least ``min_views`` neighbours, projecting it into
the neighbour, reading the neighbour's depth there (nearest pixel) and projecting that
point back lands within ``max_reproj_px`` of the pixel with a depth within ``max_rel_depth``.
Pixel convention as in plane_sweep: pixel (i, j) has its centre at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import numpy as np


def pixel_rays(K: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H*W,3) float64 camera-frame rays K^-1 [u,v,1] through the pixel centres, row-major (z = 1)."""
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    return np.stack([u.ravel(), v.ravel(), np.ones(h * w)], 1) @ np.linalg.inv(K).T


def backproject(depth: np.ndarray, K: np.ndarray, world_from_cam: np.ndarray) -> np.ndarray:
    """depth (H,W) -> world points (H*W,3) float64 (rows of zero depth give the camera centre)."""
    h, w = depth.shape
    cam = pixel_rays(K, h, w) * depth.reshape(-1, 1)
    return cam @ world_from_cam[:3, :3].T + world_from_cam[:3, 3]


def project(points: np.ndarray, K: np.ndarray, world_from_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N,3) -> pixel coordinates (N,2) and camera depth (N,)."""
    cfw = np.linalg.inv(world_from_cam)
    cam = points @ cfw[:3, :3].T + cfw[:3, 3]
    z = cam[:, 2]
    zs = np.where(np.abs(z) > 1e-12, z, 1e-12)
    uv = (cam[:, :2] / zs[:, None]) @ K[:2, :2].T + K[:2, 2]
    return uv, z


def consistency_filter(
    ref_depth: np.ndarray,
    ref_world_from_cam: np.ndarray,
    nbr_depths: list[np.ndarray],
    nbr_world_from_cam: list[np.ndarray],
    K: np.ndarray,
    min_views: int = 2,
    max_rel_depth: float = 0.01,
    max_reproj_px: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep mask (H,W) bool and fused depth (H,W) (mean of the consistent estimates).

    ref_depth, nbr_depths: (H,W) float32 with 0 = invalid, all the same size and K (3,3).
    """
    h, w = ref_depth.shape
    d_ref = ref_depth.reshape(-1).astype(np.float64)
    valid = d_ref > 0
    idx = np.flatnonzero(valid)
    pts = backproject(ref_depth, K, ref_world_from_cam)[idx]
    v, u = np.divmod(idx, w)
    uv_ref = np.stack([u + 0.5, v + 0.5], 1)
    count = np.zeros(idx.size, np.int32)
    depth_sum = d_ref[idx].copy()
    for nd, nwfc in zip(nbr_depths, nbr_world_from_cam):
        uv, z = project(pts, K, nwfc)
        col = np.floor(uv[:, 0]).astype(np.int64)
        row = np.floor(uv[:, 1]).astype(np.int64)
        inside = (z > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        sel = np.flatnonzero(inside)
        ds = nd[row[sel], col[sel]].astype(np.float64)
        sel, ds = sel[ds > 0], ds[ds > 0]
        if sel.size == 0:
            continue
        # The neighbour's surface point at that pixel, back into the reference view.
        rays = np.stack([col[sel] + 0.5, row[sel] + 0.5, np.ones(sel.size)], 1) @ np.linalg.inv(K).T
        back = (rays * ds[:, None]) @ nwfc[:3, :3].T + nwfc[:3, 3]
        uv_b, z_b = project(back, K, ref_world_from_cam)
        err_px = np.linalg.norm(uv_b - uv_ref[sel], axis=1)
        err_rel = np.abs(z_b - d_ref[idx[sel]]) / d_ref[idx[sel]]
        ok = (err_px < max_reproj_px) & (err_rel < max_rel_depth)
        count[sel[ok]] += 1
        depth_sum[sel[ok]] += z_b[ok]
    keep = np.zeros(h * w, bool)
    fused = np.zeros(h * w, np.float32)
    good = count >= min_views
    keep[idx[good]] = True
    fused[idx[good]] = (depth_sum[good] / (count[good] + 1)).astype(np.float32)
    return keep.reshape(h, w), fused.reshape(h, w)
