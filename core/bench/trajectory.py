"""Hand-held phone camera paths through a room (numpy only).

A person walks at about 0.4 m/s along a path inside the camera band of the room
(``cam_inset`` from the walls), turning the phone to scan the walls and furniture, with
a smooth hand shake (sums of low-frequency sinusoids with seeded phases) and the small
vertical bob of walking. Speeds ease in from rest and out to rest; nothing jumps.

Returns ``world_from_camera (F,4,4)`` in the OpenCV convention (x right, y down, z
forward); for Blender multiply on the right by ``diag(1,-1,-1,1)``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .room_config import RoomConfig
from .room_layout import RoomLayout

__all__ = ["camera_trajectory", "look_rotation", "MAX_SPEED", "MAX_ANGULAR_SPEED"]

#: Bounds the tests check (m/s and rad/s).
MAX_SPEED = 1.0
MAX_ANGULAR_SPEED = 1.5


def look_rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """``(F,3,3)`` world_from_camera rotations (OpenCV camera) from yaw (about +z, 0 = +x),
    pitch (up positive) and roll (about the viewing axis)."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    z = np.stack([cp * cy, cp * sy, sp], -1)
    x = np.stack([sy, -cy, np.zeros_like(yaw)], -1)  # right = forward x up, horizontal
    y = np.cross(z, x)
    R = np.stack([x, y, z], -1)  # columns
    cr, sr = np.cos(roll), np.sin(roll)
    Rz = np.zeros((len(yaw), 3, 3))
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = cr, -sr, sr, cr, 1.0
    return R @ Rz


def _inset_polygon(poly: np.ndarray, d: float) -> np.ndarray:
    """Offset an axis-aligned CCW polygon inwards by ``d`` (vertex += d * (n_prev + n_next))."""
    n = len(poly)
    out = []
    for i in range(n):
        a, b, c = poly[i - 1], poly[i], poly[(i + 1) % n]
        e1, e2 = (b - a) / np.linalg.norm(b - a), (c - b) / np.linalg.norm(c - b)
        n1, n2 = np.array([-e1[1], e1[0]]), np.array([-e2[1], e2[0]])
        out.append(b + d * (n1 + n2))
    return np.array(out)


def _smooth_noise(rng, t: np.ndarray, amp: float, fmin: float, fmax: float, k: int = 4) -> np.ndarray:
    f = rng.uniform(fmin, fmax, k)
    ph = rng.uniform(0, 2 * np.pi, k)
    a = rng.uniform(0.5, 1.0, k)
    a = a / a.sum()
    return amp * (a[None] * np.sin(2 * np.pi * f[None] * t[:, None] + ph[None])).sum(-1)


def _ease_speed(t: np.ndarray, T: float, v: float, ramp: float = 1.2) -> np.ndarray:
    r = np.clip(np.minimum(t, T - t) / ramp, 0, 1)
    return v * (3 * r**2 - 2 * r**3)


def camera_trajectory(cfg: RoomConfig, layout: RoomLayout) -> Tuple[np.ndarray, np.ndarray]:
    """``(world_from_camera (F,4,4) float64, timestamps (F,))`` for the config's trajectory kind."""
    F = cfg.frames
    rng = np.random.default_rng([cfg.seed, 7002])
    t = np.arange(F) / cfg.fps
    T = max(t[-1], 1e-6)
    # dense time grid for integrating the walk
    td = np.linspace(0, T, max(20 * F, 200))
    centre = np.array(layout.polygon).mean(0)
    eye = 1.45 + rng.uniform(-0.05, 0.1)
    v = rng.uniform(0.35, 0.5)
    speed = _ease_speed(td, T, v) * (1 + 0.15 * np.sin(2 * np.pi * td / rng.uniform(3, 6) + rng.uniform(0, 6)))
    s = np.concatenate([[0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(td))])

    if cfg.trajectory == "walk_loop":
        loop = _inset_polygon(np.array(layout.polygon, float), layout.cam_inset)
        seg = np.diff(np.vstack([loop, loop[:1]]), axis=0)
        seglen = np.linalg.norm(seg, axis=1)
        per = seglen.sum()
        # round the corners: resample densely, circular Gaussian smoothing
        m = 2000
        u = np.linspace(0, per, m, endpoint=False)
        cum = np.concatenate([[0], np.cumsum(seglen)])
        idx = np.searchsorted(cum, u, side="right") - 1
        pts = loop[idx] + seg[idx] * ((u - cum[idx]) / seglen[idx])[:, None]
        sig = int(m * 0.35 / per)
        ker = np.exp(-0.5 * (np.arange(-3 * sig, 3 * sig + 1) / max(sig, 1)) ** 2)
        ker /= ker.sum()
        pts = np.stack([np.convolve(np.r_[pts[-3 * sig:, k], pts[:, k], pts[: 3 * sig, k]], ker, "valid")
                        for k in range(2)], -1)
        arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(np.vstack([pts, pts[:1]]), axis=0), axis=1))])
        per2 = arc[-1]
        s0 = rng.uniform(0, per2)
        direction = 1 if rng.random() < 0.5 else -1
        sd = (s0 + direction * s) % per2
        xy_d = np.stack([np.interp(sd, arc, np.r_[pts[:, k], pts[0, k]]) for k in range(2)], -1)
        xy = np.stack([np.interp(t, td, xy_d[:, k]) for k in range(2)], -1)
        to_c = centre - xy
        base_yaw = np.unwrap(np.arctan2(to_c[:, 1], to_c[:, 0]))
        pan = 0.75 * np.sin(2 * np.pi * t / rng.uniform(6, 9) + rng.uniform(0, 2 * np.pi))
        yaw = base_yaw + pan
    else:  # walk_scan: back and forth across the room's long axis, looking to the sides
        poly = np.array(layout.polygon, float)
        lo, hi = poly.min(0), poly.max(0)
        long_x = (hi[0] - lo[0]) >= (hi[1] - lo[1])
        ax = 0 if long_x else 1
        inset = layout.cam_inset
        a = lo[ax] + inset
        b = hi[ax] - inset
        mid_other = lo[1 - ax] + inset + rng.uniform(0, 0.3)  # stay in the un-notched half
        L = b - a
        total = s[-1]
        # reflect the walked distance between the two ends: a smooth back-and-forth (ends eased)
        ph = np.interp(t, td, s) / max(L, 1e-6)
        pos = a + L * 0.5 * (1 - np.cos(np.pi * ph))
        xy = np.zeros((F, 2))
        xy[:, ax] = pos
        xy[:, 1 - ax] = mid_other
        del total
        side = 0.5 * np.pi  # look towards +other axis (into the room) and sweep
        heading = 0.0 if long_x else 0.5 * np.pi
        sweep = 1.3 * np.sin(2 * np.pi * t / rng.uniform(7, 10) + rng.uniform(0, 2 * np.pi))
        yaw = heading + side + sweep
    pitch = -0.3 + 0.1 * np.sin(2 * np.pi * t / rng.uniform(5, 8) + rng.uniform(0, 6))
    # hand shake + walking bob
    yaw = yaw + _smooth_noise(rng, t, 0.012, 0.3, 1.2)
    pitch = pitch + _smooth_noise(rng, t, 0.012, 0.3, 1.2)
    roll = _smooth_noise(rng, t, 0.02, 0.2, 0.8)
    walk = np.interp(t, td, speed) / max(v, 1e-6)
    z = eye + 0.012 * walk * np.sin(2 * np.pi * 1.8 * t) + _smooth_noise(rng, t, 0.01, 0.2, 0.8)
    xy = xy + np.stack([_smooth_noise(rng, t, 0.008, 0.3, 1.5) for _ in range(2)], -1)
    W = np.tile(np.eye(4), (F, 1, 1))
    W[:, :3, :3] = look_rotation(yaw, pitch, roll)
    W[:, :3, 3] = np.column_stack([xy, z])
    return W, t
