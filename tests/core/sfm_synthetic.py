"""Synthetic multi-view images of a textured plane, generated with exact homographies."""

from __future__ import annotations

import functools

import cv2
import numpy as np

W, H = 240, 180
K = np.array([[200.0, 0, W / 2], [0, 200.0, H / 2], [0, 0, 1]])  # pixel centres at +0.5 (COLMAP)


def texture(seed: int = 0, w: int = W, h: int = H) -> np.ndarray:
    """(H,W,3) uint8 smooth random texture (blurred noise, interpolates well)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.2) * 2.2 - 150, 0, 255).astype(np.uint8)


def pose(tx: float, ty: float = 0.0, tz: float = 0.0, yaw_deg: float = 0.0) -> np.ndarray:
    """world_from_camera (4,4) of a camera at (tx,ty,tz) rotated about y."""
    a = np.radians(yaw_deg)
    m = np.eye(4)
    m[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    m[:3, 3] = [tx, ty, tz]
    return m


def plane_views(normal: np.ndarray, dist: float, src_poses: list[np.ndarray], seed: int = 0):
    """Reference = texture at the identity pose; sources by the plane-induced homography.

    Plane n . X = dist in reference camera coordinates. Returns (ref, [src...], gt_depth (H,W)).
    """
    n = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    ref = texture(seed)
    srcs = []
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])  # OpenCV pixel -> COLMAP pixel
    for wfc in src_poses:
        sfr = np.linalg.inv(wfc)  # src_from_ref (ref = world)
        R, t = sfr[:3, :3], sfr[:3, 3]
        Hm = K @ (R + np.outer(t, n) / dist) @ np.linalg.inv(K)  # ref pixel -> src pixel
        Hcv = np.linalg.inv(shift) @ Hm @ shift
        srcs.append(cv2.warpPerspective(ref, Hcv, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T
    depth = dist / (rays @ n)
    return ref, srcs, depth.astype(np.float32)


# ----------------------------------------------------------------------------- ray-cast room


@functools.lru_cache(maxsize=8)
def _noise_texture(seed: int, size: int = 1024) -> np.ndarray:
    """(size,size,3) float32 multi-scale coloured noise in [0,1]: corners at every scale."""
    rng = np.random.default_rng(seed)
    tex = np.zeros((size, size, 3), np.float32)
    for sigma, amp in ((1.5, 0.5), (4.0, 0.8), (12.0, 1.0)):
        n = cv2.GaussianBlur(rng.normal(0, 1, (size, size, 3)).astype(np.float32), (0, 0), sigma,
                             borderType=cv2.BORDER_REFLECT)
        tex += amp * n / n.std()
    return np.clip(0.5 + 0.18 * tex, 0, 1)


def _lookup(tex: np.ndarray, a: np.ndarray, b: np.ndarray, ppm: float) -> np.ndarray:
    """Bilinear, wrapped texture lookup at planar coordinates (metres)."""
    s = tex.shape[0]
    x = (a * ppm) % s
    y = (b * ppm) % s
    return cv2.remap(tex, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_WRAP)


def render_room(wfc: np.ndarray, K_img: np.ndarray, w: int, h: int, ss: int = 2):
    """Ray-cast a textured room [-2,2]x[-1.5,1.5]x[-2,2] with a box inside.

    wfc: (4,4) OpenCV world_from_camera; K_img: (3,3) (pixel centres at +0.5).
    Returns image (h,w,3) uint8 and depth (h,w) float32 (z in the camera).
    """
    W2, H2 = w * ss, h * ss
    v, u = np.meshgrid((np.arange(H2) + 0.5) / ss, (np.arange(W2) + 0.5) / ss, indexing="ij")
    rays_c = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K_img).T  # z = 1
    d = rays_c @ wfc[:3, :3].T
    o = wfc[:3, 3]
    lo, hi = np.array([-2.0, -1.5, -2.0]), np.array([2.0, 1.5, 2.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t_axes = np.where(d > 0, (hi - o) / d, (lo - o) / d)
        t_axes = np.where(np.isfinite(t_axes), t_axes, np.inf)
    axis = t_axes.argmin(-1)
    t = t_axes.min(-1)
    blo, bhi = np.array([-0.5, 0.3, -0.4]), np.array([0.3, 1.5, 0.4])  # box standing on the floor (y down)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (blo - o) / d, (bhi - o) / d
        tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
    tn = np.nan_to_num(tn, nan=-np.inf)
    tf = np.nan_to_num(tf, nan=np.inf)
    t_in, t_out = tn.max(-1), tf.min(-1)
    hit_box = (t_in < t_out) & (t_in > 0) & (t_in < t)
    t = np.where(hit_box, t_in, t)
    axis = np.where(hit_box, tn.argmax(-1), axis)
    p = o + d * t[..., None]
    img = np.zeros((H2, W2, 3), np.float32)
    for ax in range(3):
        other = [k for k in range(3) if k != ax]
        for box in (False, True):
            m = (axis == ax) & (hit_box == box)
            if not m.any():
                continue
            tex = _noise_texture(ax + 3 * box)
            col = _lookup(tex, p[..., other[0]] + 7 * box, p[..., other[1]], 150.0)
            shade = 0.55 + 0.15 * ax + 0.1 * box
            img[m] = col[m] * shade
    depth = t  # rays have z = 1 in the camera, so t is the camera depth
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    depth = cv2.resize(depth.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    return np.clip(img * 255, 0, 255).astype(np.uint8), depth


def room_orbit(n: int = 24, w: int = 320, h: int = 240, arc_deg: float = 90.0):
    """Camera arc inside the room looking at the box. Returns K (3,3), poses (n,4,4), images, depths."""
    Kr = np.array([[0.8 * w, 0, w / 2], [0, 0.8 * w, h / 2], [0, 0, 1.0]])
    target = np.array([-0.1, 0.6, 0.0])
    poses, imgs, depths = [], [], []
    for i in range(n):
        a = np.radians(-arc_deg / 2 + arc_deg * i / max(n - 1, 1))
        eye = np.array([1.5 * np.sin(a), -0.2 + 0.1 * np.sin(3 * a), 1.6 * np.cos(a)])
        f = (target - eye) / np.linalg.norm(target - eye)
        r = np.cross(f, [0.0, -1.0, 0.0])  # world y points down: "up" is -y
        r /= np.linalg.norm(r)
        dwn = np.cross(f, r)
        m = np.eye(4)
        m[:3, :3] = np.stack([r, dwn, f], 1)
        m[:3, 3] = eye
        im, dp = render_room(m, Kr, w, h)
        poses.append(m)
        imgs.append(im)
        depths.append(dp)
    return Kr, np.stack(poses), imgs, depths
