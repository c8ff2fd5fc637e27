"""Points -> pixels: projection, z-buffer, depth maps, normals from depth, point visibility.

Pixel convention (COLMAP, as ``Cameras``): the centre of pixel (i, j) is at (i + 0.5, j + 0.5),
so a continuous image coordinate ``x`` falls in pixel ``floor(x)``; intrinsics of a resized
image scale exactly (``scale_intrinsics``). Cameras are OpenCV world_from_camera 4x4.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def scale_intrinsics(K: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """(3,3) K for an image of ``src`` (W,H) -> K for the same view resized to ``dst`` (W,H)."""
    K = np.array(K, np.float64)
    K[0] *= dst[0] / src[0]
    K[1] *= dst[1] / src[1]
    return K


def project(points: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, size: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Project world points into one camera.

    points (N,3); K (3,3); world_from_camera (4,4); size (W,H).
    Returns idx (V,) int64 indices of points in front of the camera and inside the image,
    u (V,) int32 column, v (V,) int32 row, z (V,) float32 depth along the optical axis.
    """
    W, H = size
    R = np.asarray(world_from_camera[:3, :3], np.float32)
    t = np.asarray(world_from_camera[:3, 3], np.float32)
    pc = (np.asarray(points, np.float32) - t) @ R  # = R^T (p - t), row form
    z = pc[:, 2]
    front = z > 1e-6
    zf = np.where(front, z, 1.0)
    x = K[0, 0] * pc[:, 0] / zf + K[0, 2]
    y = K[1, 1] * pc[:, 1] / zf + K[1, 2]
    inside = front & (x >= 0) & (x < W) & (y >= 0) & (y < H)
    idx = np.flatnonzero(inside)
    return idx, x[idx].astype(np.int32), y[idx].astype(np.int32), z[idx].astype(np.float32)


def zbuffer(u: np.ndarray, v: np.ndarray, z: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest point per pixel.

    u, v (V,) int pixel coordinates, z (V,) depths; size (W,H).
    Returns depth (H,W) float32 (inf where empty) and nearest (H,W) int64 index into u/v/z (-1 empty).
    """
    W, H = size
    pix = v.astype(np.int64) * W + u
    depth = np.full(H * W, np.inf, np.float32)
    np.minimum.at(depth, pix, z.astype(np.float32))
    nearest = np.full(H * W, -1, np.int64)
    win = np.flatnonzero(z.astype(np.float32) == depth[pix])  # the nearest point(s) of each pixel
    nearest[pix[win]] = win
    return depth.reshape(H, W), nearest.reshape(H, W)


def splat_radius(points: np.ndarray, K: np.ndarray, z: np.ndarray, spacing: float | None = None) -> int:
    """Pixel radius a point covers at the median depth: (spacing * f / z) / 2, at least 1.

    ``spacing``: typical distance between neighbouring points (the fusion voxel size);
    estimated from a subsample's nearest-neighbour distances when None.
    """
    if len(z) == 0:
        return 1
    if spacing is None:
        spacing = point_spacing(points)
    r = 0.5 * spacing * float(K[0, 0]) / float(np.median(z))
    return int(np.clip(np.ceil(r), 1, 8))


def splat_depth(u: np.ndarray, v: np.ndarray, z: np.ndarray, size: tuple[int, int], radius: int | None,
                K: np.ndarray | None = None, spacing: float | None = None, max_radius: int = 8) -> np.ndarray:
    """Z-buffer (H,W) float32 (inf empty) of points drawn as squares of radius r px.

    radius: one r for all points, or None: per point, r = ceil(spacing * fx / z / 2) (near
    points cover more pixels), rendered per radius with a (2r+1) minimum filter.
    """
    if radius is not None:
        depth, _ = zbuffer(u, v, z, size)
        return ndimage.minimum_filter(depth, size=2 * radius + 1, mode="nearest") if radius > 0 else depth
    r = np.clip(np.ceil(0.5 * float(spacing) * float(K[0, 0]) / np.maximum(z, 1e-6)), 1, max_radius).astype(np.int32)
    W, H = size
    out = np.full((H, W), np.inf, np.float32)
    for ri in np.unique(r):
        m = r == ri
        d, _ = zbuffer(u[m], v[m], z[m], size)
        np.minimum(out, ndimage.minimum_filter(d, size=2 * int(ri) + 1, mode="nearest"), out=out)
    return out


def point_spacing(points: np.ndarray, sample: int = 20000, seed: int = 0) -> float:
    """Median nearest-neighbour distance of a random subsample (scaled for the subsampling)."""
    from scipy.spatial import cKDTree

    n = len(points)
    if n < 2:
        return 0.01
    rng = np.random.default_rng(seed)
    sub = points[rng.choice(n, min(n, sample), replace=False)] if n > sample else points
    d, _ = cKDTree(sub).query(sub, k=2)
    # a subsample of s of n points in a surface is ~sqrt(n/s) times sparser
    return float(np.median(d[:, 1]) / np.sqrt(n / len(sub)))


def visible_points(points: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, size: tuple[int, int],
                   radius: int | None = 1, rel_tol: float = 0.03, spacing: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points that pass the depth test in one view.

    The z-buffer is closed by drawing points as splats of radius r px (``splat_depth``), so
    background points do not leak through the holes of a sparse cloud; radius None: per point
    from ``spacing`` (estimated when None). Returns idx (V,) into points, u (V,), v (V,) pixels.
    """
    idx, u, v, z = project(points, K, world_from_camera, size)
    if len(idx) == 0:
        return idx, u, v
    if radius is None and spacing is None:
        spacing = point_spacing(points)
    depth = splat_depth(u, v, z, size, radius, K, spacing)
    keep = z <= depth[v, u] * (1 + rel_tol)
    return idx[keep], u[keep], v[keep]


def render_depth(points: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, size: tuple[int, int],
                 radius: int | None = 1, max_gap: int = 6, spacing: float | None = None) -> np.ndarray:
    """Depth map (H,W) float32 of a point cloud, NaN where no point lies within ``max_gap`` px.

    Splats of radius r (``splat_depth``; None: per point from ``spacing``), then holes filled
    with the nearest rendered depth.
    """
    _, u, v, z = project(points, K, world_from_camera, size)
    W, H = size
    if len(z) == 0:
        return np.full((H, W), np.nan, np.float32)
    if radius is None and spacing is None:
        spacing = point_spacing(points)
    depth = splat_depth(u, v, z, size, radius, K, spacing)
    empty = ~np.isfinite(depth)
    if empty.all():
        return np.full((H, W), np.nan, np.float32)
    dist, (iy, ix) = ndimage.distance_transform_edt(empty, return_indices=True)
    out = depth[iy, ix]
    out[dist > max_gap] = np.nan
    return out.astype(np.float32)


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals (H,W,3) facing the camera from a depth map (H,W); NaN -> 0."""
    H, W = depth.shape
    z = np.nan_to_num(depth, nan=0.0).astype(np.float32)
    u = (np.arange(W, dtype=np.float32) + 0.5 - K[0, 2]) / K[0, 0]
    v = (np.arange(H, dtype=np.float32) + 0.5 - K[1, 2]) / K[1, 1]
    X = np.stack([u[None, :] * z, v[:, None] * z, z], -1)
    dx = np.gradient(X, axis=1)
    dy = np.gradient(X, axis=0)
    n = np.cross(dx, dy)
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    flip = (n * X).sum(-1) > 0
    n[flip] *= -1
    n[~np.isfinite(depth) | (z <= 0)] = 0
    return n
