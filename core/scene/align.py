"""Scene alignment for artists (numpy only): floor on Z=0 with +Z up, walls along X / Y,
and a real-world scale from one known distance.

All transforms are 4x4 similarities ``T = [[s R, t], [0, 1]]`` acting on world points
(column vectors). :func:`transform_scene` applies one to points, cameras (world_from_camera,
kept rigid: the scale moves the camera centres only) and segment boxes.

Floor: the cameras' mean "up" (OpenCV -Y of each camera, in world) is the prior for which
way is up; among normals within ``max_tilt_deg`` of it, the floor's is the one that makes the
lowest dense layer of points thinnest (:func:`find_floor`), refined by least squares. Along axes known from
the images' lines, the floor is the first dense layer with little under it, unless what lies under it is the
fronts of furniture standing on an unmeasured floor (:func:`floor_under_furniture`). Walls: the rotation about
Z whose X / Y histograms of the points are the peakiest (walls are thin lines in a top view); the larger peak is
put on the X axis.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .semantic_scene import Cameras, Segments, SemanticScene

__all__ = [
    "alignment_transform",
    "auto_align",
    "decompose",
    "find_floor",
    "floor_under_furniture",
    "room_axes",
    "scale_transform",
    "transform_points",
    "transform_scene",
    "up_prior",
    "wall_angle",
]


def _turning_up(world_from_camera: np.ndarray) -> np.ndarray | None:
    """"Up" from a path that turns: a hand-held camera pitches but hardly rolls, so its X axis
    stays horizontal and "up" is the direction orthogonal to every camera's X axis (within a
    degree or so). None when the X axes do not span a plane (the camera never turned)."""
    wfc = np.asarray(world_from_camera, np.float64)
    up = -wfc[:, :3, 1].mean(0)
    _, sv, vt = np.linalg.svd(wfc[:, :3, 0], full_matrices=True)
    if len(sv) < 2 or sv[1] <= 0.3 * sv[0] or np.linalg.norm(up) < 1e-6:
        return None
    ortho = vt[2] * np.sign(vt[2] @ up)
    return ortho if ortho @ up > np.linalg.norm(up) * np.cos(np.radians(45)) else None


def up_prior(world_from_camera: np.ndarray | None, points: np.ndarray | None = None) -> np.ndarray:
    """Unit "up" guess: from a turning camera path (:func:`_turning_up`), else the cameras' mean -Y
    axis (off by the mean pitch), without cameras the points' least-variance axis."""
    if world_from_camera is not None and len(world_from_camera):
        turning = _turning_up(world_from_camera)
        if turning is not None:
            return turning
        up = -np.asarray(world_from_camera, np.float64)[:, :3, 1].mean(0)
        if np.linalg.norm(up) > 1e-6:
            return up / np.linalg.norm(up)
    if points is not None and len(points) >= 3:
        p = np.asarray(points, np.float64)
        _, _, vt = np.linalg.svd(p - p.mean(0), full_matrices=False)
        return vt[2]
    return np.array([0.0, 0.0, 1.0])


def _subsample(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    p = np.asarray(points, np.float64)
    return p[rng.choice(len(p), n, replace=False)] if len(p) > n else p


def _fit_plane(p: np.ndarray) -> tuple[np.ndarray, float]:
    c = p.mean(0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    n = vt[2]
    return n, float(n @ c)


def _cone(up: np.ndarray, max_deg: float, step_deg: float) -> np.ndarray:
    """(M,3) unit normals on a grid of tilts (two angles, +/- ``max_deg``) around ``up``."""
    a = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    t = np.tan(np.radians(np.arange(-max_deg, max_deg + 1e-9, step_deg)))
    u, v = np.meshgrid(t, t, indexing="ij")
    n = up + u.reshape(-1, 1) * a + v.reshape(-1, 1) * b
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _floor_peaks(p: np.ndarray, normals: np.ndarray, bin_size: float, max_below: float) -> tuple[np.ndarray, np.ndarray]:
    """For each normal: (points in the densest thin layer with at most ``max_below`` of the points
    under it, that layer's height). One bincount per chunk of normals."""
    scores, heights = np.empty(len(normals)), np.empty(len(normals))
    allowed = max(1, int(max_below * len(p)))
    for c in range(0, len(normals), 64):
        n = normals[c:c + 64]
        h = n @ p.T  # (m,P)
        lo = h.min(1, keepdims=True)
        b = ((h - lo) / bin_size).astype(np.int64)
        nb = int(b.max()) + 2
        hist = np.bincount((b + np.arange(len(n))[:, None] * nb).ravel(), minlength=len(n) * nb).reshape(len(n), nb)
        layer = hist[:, :-1] + hist[:, 1:]  # two bins: a layer straddling a bin edge
        below = np.cumsum(hist, 1)[:, :-1] - hist[:, :-1]
        layer = np.where(below <= allowed, layer, -1)
        k = layer.argmax(1)
        scores[c:c + 64] = layer[np.arange(len(n)), k]
        heights[c:c + 64] = lo[:, 0] + (k + 1) * bin_size
    return scores, heights


def find_floor(points: np.ndarray, up: np.ndarray, *, max_tilt_deg: float = 30.0, max_below: float = 0.02,
               seed: int = 0) -> tuple[np.ndarray, float]:
    """(normal, offset) of the floor: ``normal @ p == offset`` on it, normal pointing up.

    The floor is the densest thin layer of points with (almost) nothing under it. For every
    candidate normal within ``max_tilt_deg`` of ``up`` the points' heights are histogrammed and
    the densest layer with at most ``max_below`` of the cloud under it is scored; only the true
    floor normal makes the floor one thin layer (coarse grid, then fine grid), then least squares
    on that layer. Unlike RANSAC on random triples this finds a floor that is only a few percent
    of a furnished room's cloud, and furniture tops (with the floor under them) never qualify.
    """
    rng = np.random.default_rng(seed)
    p = _subsample(points, 40_000, rng)
    if len(p) < 10:
        raise ValueError("too few points to find a floor")
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    extent = float(np.linalg.norm(np.percentile(p, 98, 0) - np.percentile(p, 2, 0))) or 1.0
    bin_size = 0.003 * extent
    n = up
    for span, step in ((max_tilt_deg, max(1.0, max_tilt_deg / 15)), (2.0, 0.25), (0.3, 0.05)):
        normals = _cone(n, span, step)
        scores, heights = _floor_peaks(p, normals, bin_size, max_below)
        best = int(np.argmax(scores))
        n, h0 = normals[best], float(heights[best])
    if scores[best] < 0.005 * len(p):
        raise ValueError("no floor found (is the cloud a room?)")
    inl = np.abs(p @ n - h0) < 1.5 * bin_size
    nn, dd = _fit_plane(p[inl])
    if nn @ n < 0:
        nn, dd = -nn, -dd
    if np.degrees(np.arccos(min(1.0, float(nn @ n)))) > 1.0:  # a least-squares fit pulled by clutter: keep the scan
        return n, float(np.median(p[inl] @ n))
    return nn, dd


def _rotation_to_z(n: np.ndarray) -> np.ndarray:
    """Rotation taking unit vector ``n`` to +Z (Rodrigues)."""
    n = n / np.linalg.norm(n)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(n, z), float(n @ z)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _peakiness(xy: np.ndarray, theta: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """For each angle: (sum of squared histogram counts along x, along y) after rotating by -theta."""
    sx, sy = np.empty(len(theta)), np.empty(len(theta))
    for i, t in enumerate(theta):
        c, s = np.cos(t), np.sin(t)
        x = xy[:, 0] * c + xy[:, 1] * s
        y = -xy[:, 0] * s + xy[:, 1] * c
        hx = np.bincount(np.floor((x - x.min()) / bin_size).astype(np.int64))
        hy = np.bincount(np.floor((y - y.min()) / bin_size).astype(np.int64))
        sx[i], sy[i] = float(hx @ hx), float(hy @ hy)
    return sx, sy


def wall_angle(points_z_up: np.ndarray, seed: int = 0) -> float:
    """Angle (radians) to rotate about Z so the dominant wall direction lies along X."""
    rng = np.random.default_rng(seed)
    p = _subsample(points_z_up, 40_000, rng)
    if len(p) < 10:
        return 0.0
    z = p[:, 2]
    lo, hi = np.percentile(z, [2, 98])
    p = p[(z > lo + 0.1 * (hi - lo)) & (z < hi - 0.1 * (hi - lo))]  # walls, not floor / ceiling
    if len(p) < 10:
        return 0.0
    xy = p[:, :2]
    extent = float(np.linalg.norm(np.ptp(xy, 0))) or 1.0
    bin_size = extent / 200
    coarse = np.radians(np.arange(0.0, 90.0, 1.0))
    sx, sy = _peakiness(xy, coarse, bin_size)
    t0 = coarse[int(np.argmax(sx + sy))]
    fine = t0 + np.radians(np.arange(-1.0, 1.0001, 0.05))
    sx, sy = _peakiness(xy, fine, bin_size)
    best = int(np.argmax(sx + sy))
    theta = float(fine[best])
    # A wall along X is a peak of the y histogram: make the stronger peak that one.
    if sx[best] > sy[best]:
        theta += np.pi / 2
    return theta


#: Shares of the cloud a floor found along known axes may have below it, tried in turn.
FLOOR_MAX_BELOW = (0.02, 0.05, 0.1)
#: A layer with at least this share of the cloud under it ...
FURNITURE_TOP_BELOW = 0.01
#: ... most of which lies deeper than this many layer bins (0.3 % of the cloud's extent each) ...
DEEP_BELOW_BINS = 10
#: ... and stands in vertical faces (this share of it on the peaks of a top view along a wall axis) is a furniture top.
FACES_BELOW = 0.3


def _on_peaks(values: np.ndarray, bin_size: float) -> float:
    """Share of ``values`` (N,) in histogram bins holding at least 3x the mean bin: high for points on
    a few planes across the axis, about 0 for scattered ones."""
    counts = np.bincount(np.floor((values - values.min()) / bin_size).astype(np.int64))
    return float(counts[counts >= 3 * counts.mean()].sum() / max(values.size, 1))


def floor_under_furniture(heights: np.ndarray, across: np.ndarray, layer: float, bin_size: float) -> float:
    """The floor's height along the up axis: ``layer``, or the foot of what stands under it (the 2nd percentile
    of the heights under it) when that is the fronts of furniture standing on an unmeasured floor.

    heights: (N,) the points' heights along the up axis; across: (N,2) their coordinates along the two wall
    axes. A plain floor leaves mismatched depth under itself, scattered; under a furniture top (a kitchen
    island filmed from around it, over a floor too plain to be measured) the points reach deep below it and
    stand in vertical faces, which a top view along the walls shows as peaks.
    """
    under = heights < layer - 1.5 * bin_size
    if under.sum() < FURNITURE_TOP_BELOW * heights.size or np.median(layer - heights[under]) < DEEP_BELOW_BINS * bin_size:
        return layer
    if max(_on_peaks(across[under, 0], 3 * bin_size), _on_peaks(across[under, 1], 3 * bin_size)) < FACES_BELOW:
        return layer
    return float(np.percentile(heights[under], 2))


def alignment_transform(points: np.ndarray, world_from_camera: np.ndarray | None = None, seed: int = 0,
                        axes: np.ndarray | None = None) -> np.ndarray:
    """4x4 rigid transform: floor normal -> +Z, floor at Z=0, dominant wall along X, the room's
    footprint centred on the origin.

    axes: (3,3) rows (wall direction, wall direction, up) known otherwise (``manhattan.manhattan_axes``):
    then only the floor's height and the footprint's centre come from the points."""
    pts = np.asarray(points, np.float64)
    if axes is not None:
        n = np.asarray(axes[2], np.float64) / np.linalg.norm(axes[2])
        p = _subsample(pts, 40_000, np.random.default_rng(seed))
        extent = float(np.linalg.norm(np.percentile(p, 98, 0) - np.percentile(p, 2, 0))) or 1.0
        bin_size = 0.003 * extent
        # Mismatched depth under a plain floor can put a few percent of the points below it: the floor is
        # the first dense layer found as more of the cloud may lie under it.
        for max_below in FLOOR_MAX_BELOW:
            scores, heights = _floor_peaks(p, n[None], bin_size, max_below)
            if scores[0] >= 0.005 * len(p):
                break
        else:
            raise ValueError("no floor found along the given up axis")
        h = p @ n
        d = floor_under_furniture(h, p @ np.asarray(axes[:2], np.float64).T,
                                  float(np.median(h[np.abs(h - heights[0]) < 1.5 * bin_size])), bin_size)
    else:
        # A turning path gives "up" within a degree or so: search near it, where a weak floor (a few
        # percent of a furnished room's cloud) cannot lose to a tilted layer of clutter.
        turning = world_from_camera is not None and len(world_from_camera) and _turning_up(world_from_camera) is not None
        n, d = find_floor(pts, up_prior(world_from_camera, pts), max_tilt_deg=10.0 if turning else 30.0, seed=seed)
    r1 = _rotation_to_z(n)
    q = pts @ r1.T
    q[:, 2] -= d
    if axes is not None:
        x = r1 @ np.asarray(axes[0], np.float64)
        theta = float(np.arctan2(x[1], x[0]))
    else:
        theta = wall_angle(q, seed=seed)
    c, s = np.cos(-theta), np.sin(-theta)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    rot = rz @ r1
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = rz @ np.array([0.0, 0.0, -d])
    xy = transform_points(_subsample(pts, 60_000, np.random.default_rng(seed)), out)[:, :2]
    out[:2, 3] -= (np.percentile(xy, 1, 0) + np.percentile(xy, 99, 0)) / 2
    return out


def scale_transform(a: np.ndarray, b: np.ndarray, true_distance: float) -> np.ndarray:
    """Uniform scale about the origin that makes |a - b| equal ``true_distance``."""
    measured = float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
    if not np.isfinite(true_distance) or true_distance <= 0:
        raise ValueError("the known distance must be positive")
    if measured < 1e-9:
        raise ValueError("the two points coincide; pick two different points")
    out = np.eye(4)
    out[:3, :3] *= true_distance / measured
    return out


def decompose(t: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rotation 3x3, translation) of a similarity."""
    t = np.asarray(t, np.float64)
    s = float(np.cbrt(np.linalg.det(t[:3, :3])))
    return s, t[:3, :3] / s, t[:3, 3].copy()


def transform_points(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, np.float64)
    return np.asarray(points, np.float64) @ t[:3, :3].T + t[:3, 3]


def transform_cameras(cams: Cameras, t: np.ndarray) -> Cameras:
    _s, r, _ = decompose(t)
    wfc = np.asarray(cams.world_from_camera, np.float64).copy()
    if len(wfc):
        wfc[:, :3, 3] = transform_points(wfc[:, :3, 3], t)
        wfc[:, :3, :3] = r @ wfc[:, :3, :3]
    return replace(cams, world_from_camera=wfc.astype(np.float32))


def transform_segments(seg: Segments, t: np.ndarray) -> Segments:
    s, r, _ = decompose(t)
    if len(seg) == 0:
        return seg
    return replace(
        seg,
        centroid=transform_points(seg.centroid, t).astype(np.float32),
        box_center=transform_points(seg.box_center, t).astype(np.float32),
        box_axes=np.einsum("ij,skj->ski", r, seg.box_axes).astype(np.float32),  # rows are axes
        box_extent=(np.asarray(seg.box_extent, np.float64) * s).astype(np.float32),
    )


def transform_scene(scene: SemanticScene, t: np.ndarray) -> SemanticScene:
    """A copy of ``scene`` with ``t`` applied; ``metadata["alignment"]`` accumulates it."""
    t = np.asarray(t, np.float64)
    meta = dict(scene.metadata)
    prev = np.asarray(meta.get("alignment", np.eye(4).tolist()), np.float64)
    meta["alignment"] = (t @ prev).tolist()
    if meta.get("room_axes") is not None:  # directions: rotated, not moved
        meta["room_axes"] = (np.asarray(meta["room_axes"], np.float64) @ t[:3, :3].T).tolist()
    return replace(
        scene,
        points=transform_points(scene.points, t).astype(np.float32),
        cameras=transform_cameras(scene.cameras, t),
        segments=transform_segments(scene.segments, t),
        metadata=meta,
        frame_path=None if scene.frame_path is None else replace(
            scene.frame_path, cameras=transform_cameras(scene.frame_path.cameras, t)),
    )


def room_axes(scene: SemanticScene) -> np.ndarray | None:
    """(3,3) rows (wall, wall, up) the geometry engine found from the keyframes' lines, or None."""
    axes = scene.metadata.get("room_axes")
    return None if axes is None else np.asarray(axes, np.float64)


def auto_align(scene: SemanticScene) -> tuple[SemanticScene, str]:
    """Aligned copy of ``scene`` and "" , or ``scene`` unchanged and why not (never raises)."""
    if len(scene) < 100:
        return scene, "too few points to align"
    try:
        t = alignment_transform(scene.points, scene.cameras.world_from_camera if len(scene.cameras) else None,
                                axes=room_axes(scene))
    except (ValueError, np.linalg.LinAlgError) as exc:
        return scene, str(exc)
    return transform_scene(scene, t), ""
