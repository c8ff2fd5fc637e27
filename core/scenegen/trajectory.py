"""Hand-held phone camera paths through a room (numpy only).

A person walks at about 0.4 m/s along a path inside the camera band of the room
(``cam_inset`` from the walls), turning the phone to scan the walls and furniture, with
a smooth hand shake (sums of low-frequency sinusoids with seeded phases) and the small
vertical bob of walking. Speeds ease in from rest and out to rest; nothing jumps.

``hard_walk`` is hard for geometry on purpose: slow rotations on the spot (no baseline), fast
pans (up to :data:`HARD_MAX_ANGULAR_SPEED`) and close-ups of blank walls (the camera leaves the
loop for a spot of wall with nothing on or in front of it, :func:`closeup_spots`, and looks at it
from :data:`CLOSEUP_DISTANCE` for 1 to 2 s), with the same hand shake.

Returns ``world_from_camera (F,4,4)`` in the OpenCV convention (x right, y down, z
forward); for Blender multiply on the right by ``diag(1,-1,-1,1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .room_config import RoomConfig
from .room_layout import RoomLayout, footprint_corners

__all__ = ["camera_trajectory", "look_rotation", "closeup_spots", "camera_clearance", "WallSpot", "MAX_SPEED",
           "MAX_ANGULAR_SPEED", "HARD_MAX_ANGULAR_SPEED", "CLOSEUP_DISTANCE"]

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


def _smoothed_loop(layout: RoomLayout) -> Tuple[np.ndarray, np.ndarray]:
    """The walking loop: the floor polygon inset by ``cam_inset`` with rounded corners.

    Returns ``(pts (m,2), arc (m+1,))``: dense closed-loop samples and their arc length
    (``arc[-1]`` = perimeter; sample ``m`` is sample ``0`` again)."""
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
    return pts, arc


def camera_trajectory(cfg: RoomConfig, layout: RoomLayout) -> Tuple[np.ndarray, np.ndarray]:
    """``(world_from_camera (F,4,4) float64, timestamps (F,))`` for the config's trajectory kind."""
    F = cfg.frames
    rng = np.random.default_rng([cfg.seed, 7002])
    t = np.arange(F) / cfg.fps
    if cfg.trajectory == "hard_walk":
        return _hard_walk(cfg, layout, rng, t), t
    T = max(t[-1], 1e-6)
    # dense time grid for integrating the walk
    td = np.linspace(0, T, max(20 * F, 200))
    centre = np.array(layout.polygon).mean(0)
    eye = 1.45 + rng.uniform(-0.05, 0.1)
    v = rng.uniform(0.35, 0.5)
    speed = _ease_speed(td, T, v) * (1 + 0.15 * np.sin(2 * np.pi * td / rng.uniform(3, 6) + rng.uniform(0, 6)))
    s = np.concatenate([[0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(td))])

    if cfg.trajectory == "walk_loop":
        pts, arc = _smoothed_loop(layout)
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


# ----------------------------------------------------------------------------- hard_walk

#: hard_walk's bounds (the tests check them): fast pans turn faster than a walk does.
HARD_MAX_ANGULAR_SPEED = 3.5
#: Distance of the camera from the wall during a close-up (m).
CLOSEUP_DISTANCE = (0.4, 0.8)
_WALK_PEAK = 0.8  # m/s, peak speed of a walk segment (minimum-jerk: 1.875 x the mean)
_ROTATE_PEAK = 2.2  # rad/s, slow rotation in place
_PAN_PEAK = 3.0  # rad/s, fast pan


@dataclass(frozen=True)
class WallSpot:
    """A place for a close-up: offset ``s`` along wall ``wall``; ``band`` is the loop point in front
    of it (``arc`` its arc length on :func:`_smoothed_loop`), ``normal`` the wall's inward normal
    and ``clear`` the half-width (m) of the strip of wall, and of floor up to the loop, that holds
    no opening and no furniture."""

    wall: int
    s: float
    arc: float
    band: Tuple[float, float]
    normal: Tuple[float, float]
    band_distance: float
    clear: float


def closeup_spots(layout: RoomLayout, clear: float = 0.7, step: float = 0.1, low: float = 0.85,
                  body: float = 0.3) -> List[WallSpot]:
    """Places on the walls for a close-up, on a straight part of the walking loop: over ``±clear`` m
    along the wall no door or window, and no furniture taller than ``low`` within reach of the view
    (lower pieces stay under the view of a level camera); over ``±body`` m no furniture at all
    between the wall and the loop (the way in, and room for the person holding the phone).

    A camera :data:`CLOSEUP_DISTANCE` from the wall sees ``±0.69 d`` m of it (26 mm lens), so
    ``clear=0.7`` leaves a margin for the hand's drift."""
    pts, arc = _smoothed_loop(layout)
    depth = layout.cam_inset + 0.1
    reach = CLOSEUP_DISTANCE[1] + 0.1
    prints = [footprint_corners(it.center, it.size, it.yaw) for it in layout.items]
    out: List[WallSpot] = []
    for k, w in enumerate(layout.walls):
        p0, n = np.array(w.p0, float), np.array(w.normal, float)
        tang = (np.array(w.p1, float) - p0) / w.length
        ops = [o for o in layout.openings if o.wall == k]
        for s in np.arange(clear, w.length - clear + 1e-9, step):
            s = float(np.round(s, 3))
            if any(abs(o.offset - s) < o.width / 2 + clear + 0.05 for o in ops):
                continue
            c = p0 + tang * s

            def strip(half, far):
                return np.array([c - tang * half + n * 0.01, c + tang * half + n * 0.01,
                                 c + tang * half + n * far, c - tang * half + n * far])

            view, walk = strip(clear, reach), strip(body, depth)
            if not _in_room(layout, view).all():
                continue
            if any(_quad_overlap(fp, walk) or (it.top > low and _quad_overlap(fp, view))
                   for it, fp in zip(layout.items, prints)):
                continue
            j = int(np.argmin(np.linalg.norm(pts - (c + n * layout.cam_inset), axis=1)))
            if np.linalg.norm(pts[j] - (c + n * layout.cam_inset)) > 0.03:
                continue  # near a rounded corner of the loop
            out.append(WallSpot(k, s, float(arc[j]), (float(pts[j, 0]), float(pts[j, 1])), (float(n[0]), float(n[1])),
                                float((pts[j] - p0) @ n), clear))
    return out


def _in_room(layout: RoomLayout, xy: np.ndarray) -> np.ndarray:
    """``(N,)`` whether floor points ``(N,2)`` are inside the room outline (the L's notch excluded)."""
    xy = np.atleast_2d(np.asarray(xy, float))
    poly = np.array(layout.polygon, float)
    lo, hi = poly.min(0), poly.max(0)
    ok = np.all((xy >= lo - 1e-9) & (xy <= hi + 1e-9), axis=1)
    if layout.shape == "L":
        cx, cy, hx, hy = layout.obstacles[0][:4]
        ok &= ~((np.abs(xy[:, 0] - cx) < hx - 1e-9) & (np.abs(xy[:, 1] - cy) < hy - 1e-9))
    return ok


def _quad_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    from .room_layout import _sat_overlap

    return _sat_overlap(a, b, 0.0)


def _ease(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk ease 0 -> 1 (zero velocity and acceleration at both ends; peak slope 1.875)."""
    u = np.clip(u, 0.0, 1.0)
    return u**3 * (10 - 15 * u + 6 * u**2)


def _nearest_angle(a: float, ref: float) -> float:
    return a + 2 * np.pi * np.round((ref - a) / (2 * np.pi))


def _hard_walk(cfg: RoomConfig, layout: RoomLayout, rng, t: np.ndarray) -> np.ndarray:
    """Hard for geometry, hand-held: rotations in place (no baseline), fast pans (up to
    :data:`HARD_MAX_ANGULAR_SPEED`), and close-ups of blank walls (the camera walks from the loop to
    :data:`CLOSEUP_DISTANCE` of a wall with nothing on it, looks at it for 1 to 2 s, and walks back).

    A chain of moves, each eased from rest to rest (minimum jerk), planned until the video ends:
    positions stay on the walking loop (kept free of tall furniture by the layout) or on the clear
    strip between the loop and a close-up spot (:func:`closeup_spots`); then the hand shake and walking
    bob of the other trajectories."""
    F = len(t)
    T = max(float(t[-1]), 1e-6)
    pts, arc = _smoothed_loop(layout)
    per = float(arc[-1])

    def loop_xy(a):
        a = np.mod(a, per)
        return np.stack([np.interp(a, arc, np.r_[pts[:, k], pts[0, k]]) for k in range(2)], -1)

    spots: List[WallSpot] = []
    for clear in (0.7, 0.5, 0.3):  # blank walls first; failing that, at least room for the camera
        spots = closeup_spots(layout, clear)
        if spots:
            break
    centre = np.array(layout.polygon, float).mean(0)
    eye = 1.45 + rng.uniform(-0.05, 0.1)

    # segments: (duration, xy(u) for eased u in [0,1], yaw0, yaw1, pitch0, pitch1)
    segs: List[Tuple] = []
    state = {"a": 0.0, "xy": None, "yaw": 0.0, "pitch": -0.25}

    def toward_centre(xy):
        d = centre - xy
        return float(np.arctan2(d[1], d[0]))

    def push(tau, path, yaw1, pitch1):
        segs.append((float(tau), path, state["yaw"], float(yaw1), state["pitch"], float(pitch1)))
        state["yaw"], state["pitch"] = float(yaw1), float(pitch1)

    def hold_path(xy):
        xy = np.array(xy, float)
        return lambda u: np.broadcast_to(xy, (len(u), 2))

    def rotate(peak, lo, hi):
        d = rng.uniform(lo, hi) * (1 if rng.random() < 0.5 else -1)
        push(max(0.5, 1.875 * abs(d) / peak), hold_path(state["xy"]), state["yaw"] + d,
             -0.25 + rng.uniform(-0.12, 0.12))

    def walk_arc(a1, yaw1):
        a0 = state["a"]
        dist = abs(a1 - a0)
        push(max(0.8, 1.875 * dist / _WALK_PEAK), lambda u, a0=a0, a1=a1: loop_xy(a0 + (a1 - a0) * u),
             _nearest_angle(yaw1, state["yaw"]), -0.3 + rng.uniform(-0.1, 0.1))
        state["a"], state["xy"] = a1, loop_xy(np.array([a1]))[0]

    def line(xy1, yaw1, pitch1, peak=_WALK_PEAK, min_tau=0.8):
        xy0, xy1 = np.array(state["xy"], float), np.array(xy1, float)
        dist = float(np.linalg.norm(xy1 - xy0))
        push(max(min_tau, 1.875 * dist / peak), lambda u, a=xy0, b=xy1: a + (b - a) * u[:, None], yaw1, pitch1)
        state["xy"] = xy1

    def signed_arc(a_from, a_to):
        d = (a_to - a_from) % per
        return d if d <= per / 2 else d - per

    # start: a little way along the loop from the first close-up spot (or anywhere)
    if spots:
        spot = spots[int(rng.integers(len(spots)))]
        a_start = spot.arc + (1 if rng.random() < 0.5 else -1) * rng.uniform(0.5, 0.9)
    else:
        spot = None
        a_start = rng.uniform(0, per)
    state["a"] = a_start
    state["xy"] = loop_xy(np.array([a_start]))[0]
    state["yaw"] = toward_centre(state["xy"]) + rng.uniform(-0.8, 0.8)
    rotate_first = rng.random() < 0.6
    elapsed = lambda: sum(sg[0] for sg in segs)  # noqa: E731
    cycle = 0
    while elapsed() < T:
        if rotate_first or cycle > 0:
            rotate(_ROTATE_PEAK, 1.8, 2.6)  # a slow look around on the spot: no baseline
        if spot is not None:
            n = np.array(spot.normal)
            face = float(np.arctan2(-n[1], -n[0]))
            walk_arc(state["a"] + signed_arc(state["a"], spot.arc), face + rng.uniform(-0.6, 0.6))
            d = rng.uniform(*CLOSEUP_DISTANCE)
            band = np.array(spot.band)
            wall_xy = band - n * (spot.band_distance - d)
            line(wall_xy, _nearest_angle(face, state["yaw"]), rng.uniform(-0.06, 0.06))
            tang = np.array([-n[1], n[0]])
            drift = rng.uniform(-0.05, 0.05) * min(1.0, spot.clear / 0.7)
            line(wall_xy + tang * drift, state["yaw"] + rng.uniform(-0.08, 0.08),
                 state["pitch"] + rng.uniform(-0.02, 0.02), min_tau=rng.uniform(1.0, 1.8))  # the close-up: a blank wall fills the view
            if rng.random() < 0.5:
                rotate(_PAN_PEAK, 1.2, 1.7)  # fast pan at the wall
                line(band, state["yaw"] + rng.uniform(-0.4, 0.4), -0.25 + rng.uniform(-0.1, 0.1))
            else:
                line(band, state["yaw"] + rng.uniform(-0.4, 0.4), -0.25 + rng.uniform(-0.1, 0.1))
                rotate(_PAN_PEAK, 1.2, 1.7)  # fast pan
            state["a"] = spot.arc
        a1 = state["a"] + (1 if rng.random() < 0.5 else -1) * rng.uniform(0.6, 1.2)
        xy1 = loop_xy(np.array([a1]))[0]
        walk_arc(a1, toward_centre(xy1) + rng.uniform(-0.7, 0.7))
        rotate(_PAN_PEAK, 1.2, 1.7)
        if spots:  # next close-up: the nearest other place on the walls
            far = [sp for sp in spots if abs(signed_arc(state["a"], sp.arc)) > 1.0] or spots
            spot = min(far, key=lambda sp: abs(signed_arc(state["a"], sp.arc)) + rng.uniform(0, 0.5))
        cycle += 1

    # evaluate the plan
    ends = np.cumsum([sg[0] for sg in segs])
    starts = ends - np.array([sg[0] for sg in segs])
    xy = np.zeros((F, 2))
    yaw = np.zeros(F)
    pitch = np.zeros(F)
    k = np.minimum(np.searchsorted(ends, t, side="right"), len(segs) - 1)
    for j in np.unique(k):
        sel = k == j
        tau, path, y0, y1, p0, p1 = segs[j]
        u = _ease((t[sel] - starts[j]) / tau)
        xy[sel] = path(u)
        yaw[sel] = y0 + (y1 - y0) * u
        pitch[sel] = p0 + (p1 - p0) * u
    # walking speed (for the bob), from the planned path
    td = np.linspace(0, T, max(20 * F, 200))
    kd = np.minimum(np.searchsorted(ends, td, side="right"), len(segs) - 1)
    xyd = np.zeros((len(td), 2))
    for j in np.unique(kd):
        sel = kd == j
        xyd[sel] = segs[j][1](_ease((td[sel] - starts[j]) / segs[j][0]))
    sp = np.r_[0.0, np.linalg.norm(np.diff(xyd, axis=0), axis=1) / np.maximum(np.diff(td), 1e-9)]
    walk = np.clip(np.interp(t, td, sp) / 0.45, 0.0, 1.5)
    # hand shake + walking bob, as the other trajectories
    yaw = yaw + _smooth_noise(rng, t, 0.012, 0.3, 1.2)
    pitch = pitch + _smooth_noise(rng, t, 0.012, 0.3, 1.2)
    roll = _smooth_noise(rng, t, 0.02, 0.2, 0.8)
    z = eye + 0.012 * walk * np.sin(2 * np.pi * 1.8 * t) + _smooth_noise(rng, t, 0.01, 0.2, 0.8)
    xy = xy + np.stack([_smooth_noise(rng, t, 0.008, 0.3, 1.5) for _ in range(2)], -1)
    W = np.tile(np.eye(4), (F, 1, 1))
    W[:, :3, :3] = look_rotation(yaw, pitch, roll)
    W[:, :3, 3] = np.column_stack([xy, z])
    return W


def camera_clearance(world_from_camera: np.ndarray, layout: RoomLayout) -> Tuple[np.ndarray, np.ndarray]:
    """Per frame: ``(horizontal distance to the nearest wall, negative outside the room; distance to
    the nearest furniture box, negative inside one)`` of the camera centre, in metres (for checks)."""
    c = np.asarray(world_from_camera)[:, :3, 3]
    wall_d = np.full(len(c), np.inf)
    for w in layout.walls:
        p0, p1 = np.array(w.p0, float), np.array(w.p1, float)
        L = np.linalg.norm(p1 - p0)
        s = np.clip((c[:, :2] - p0) @ ((p1 - p0) / L), 0, L)
        q = p0 + s[:, None] * (p1 - p0) / L
        wall_d = np.minimum(wall_d, np.linalg.norm(c[:, :2] - q, axis=1))
    inside = _in_room(layout, c[:, :2])
    wall_d = np.where(inside, wall_d, -wall_d)
    item_d = np.full(len(c), np.inf)
    for it in layout.items:
        cy, sy = np.cos(-it.yaw), np.sin(-it.yaw)
        rel = c[:, :2] - np.array(it.center)
        loc = np.stack([cy * rel[:, 0] - sy * rel[:, 1], sy * rel[:, 0] + cy * rel[:, 1]], -1)
        half = np.array([it.size[0] / 2, it.size[1] / 2, it.size[2] / 2])
        p = np.column_stack([loc, c[:, 2] - (it.z + half[2])])
        q = np.abs(p) - half
        outside = np.linalg.norm(np.maximum(q, 0), axis=1)
        inside_d = np.minimum(q.max(1), 0)
        item_d = np.minimum(item_d, outside + inside_d)  # signed distance to the box
    return wall_d, item_d
