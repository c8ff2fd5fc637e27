"""The room's box: floor, ceiling and the four outer walls, found in the measured dense cloud.

Blank walls, floors and ceilings are where the plane sweep finds least, yet a room's outline (the
skirting, the corners, the door frames, the floor's few textured patches) is measured, and a camera
inside the room sees the box wherever nothing stands in front of it. The box is found in the room's
own frame (``core.scene.align.alignment_transform``: floor on Z = 0, walls along X and Y); each of
its walls and ceiling is the outermost dense layer of points along its axis beyond the cameras, or open
(infinitely far) where none is dense enough (an unseen ceiling); its floor is the alignment's. A plain wall is
barely measured, so that layer can be the front of a sofa before it: where the floor runs on beyond a wall's
layer, the wall moves out to the floor's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .align import alignment_transform, transform_points


@dataclass
class RoomBox:
    """The room as the inside of up to six planes: normals (K,3) unit, pointing out of the room, and
    offsets (K,), in world coordinates; a point x is inside when normals @ x < offsets for every side."""

    normals: np.ndarray
    offsets: np.ndarray

    def depth(self, world_from_camera: np.ndarray, rays: np.ndarray) -> np.ndarray:
        """Camera depth (N,) where rays (N,3) (camera frame, z = 1) leave the room; inf where never.

        The camera must be inside: every ray leaves the box exactly once.
        """
        d = rays @ world_from_camera[:3, :3].T  # the ray parameter is the depth since rays have z = 1
        towards = d @ self.normals.T  # (N,K)
        gap = self.offsets - self.normals @ world_from_camera[:3, 3]  # (K,)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(towards > 1e-12, gap / towards, np.inf)
        return np.where(t > 0, t, np.inf).min(1)

    def contains(self, world_points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(N,) bool: points (N,3) at least ``margin`` inside every side."""
        return np.all(world_points @ self.normals.T < self.offsets - margin, axis=1)


def _outer_layer(values: np.ndarray, inside: float, side: int, bin_size: float, min_frac: float,
                 peak: float = 0.0) -> float | None:
    """The outermost dense layer of ``values`` (N,) beyond ``inside`` on one side (+1 or -1), or None.

    A layer is a histogram bin (``bin_size``) holding at least ``min_frac`` of the points on that side and
    ``peak`` times the mean bin's count.
    """
    v = values[(values - inside) * side > 0]
    if v.size < 50:
        return None
    dist = (v - inside) * side
    counts = np.bincount(np.floor(dist / bin_size).astype(np.int64))
    dense = np.flatnonzero((counts >= min_frac * v.size) & (counts >= peak * counts.mean()))
    if dense.size == 0:
        return None
    k = dense.max()
    sel = (dist >= k * bin_size) & (dist < (k + 1) * bin_size)
    return float(inside + side * np.median(dist[sel]))


def _wall_side(floor_values: np.ndarray, at: float, side: int, bin_size: float, floor_reach: float) -> float:
    """A wall's position ``at`` (a dense layer of the points' coordinate along its axis) held against the
    floor's points (``floor_values`` (M,), the same coordinate): moved out to the floor's edge when at least
    ``floor_reach`` of them lie beyond it (the layer is the front of furniture standing in the room)."""
    if floor_values.size >= 50 and np.mean((floor_values - at) * side > 2 * bin_size) >= floor_reach:
        return float(side * np.percentile(floor_values * side, 99))
    return at


def _refine_side(points: np.ndarray, normal: np.ndarray, offset: float, band: float) -> tuple[np.ndarray, float]:
    """Least-squares plane of the points (N,3) within ``band`` of n.x = offset, twice, the band halved
    the second time: the aligned frame's axes are only as square as the walls' histogram peaks."""
    for width in (band, band / 2):
        near = points[np.abs(points @ normal - offset) < width]
        if len(near) < 50:
            break
        c = near.mean(0)
        n = np.linalg.svd(near - c, full_matrices=False)[2][-1]
        n = n if n @ normal > 0 else -n
        if n @ normal < 0.95:  # more than ~18 degrees off the axis: not this side's plane
            break
        normal, offset = n / np.linalg.norm(n), float(n @ c / np.linalg.norm(n))
    return normal, offset


def find_room_box(points: np.ndarray, world_from_camera: np.ndarray, bin_size: float,
                  min_frac: float = 0.01, seed: int = 0, axes: np.ndarray | None = None,
                  min_ceiling: float = 1.3, floor_reach: float = 0.05) -> RoomBox | None:
    """The room's box from dense points (N,3) and the cameras (M,4,4) that filmed it; None when the
    cloud has no floor to align to.

    bin_size: the thickness of a layer (scene units: about 1 % of the room's size).
    axes: (3,3) rows (wall, wall, up) from the images (``manhattan.manhattan_axes``): the sides are then
    kept square to them (only their offsets are fitted); None: the axes of the measured points.
    min_ceiling: the lowest ceiling, in units of the highest camera's height above the floor.
    floor_reach: a wall with this share of the floor's points beyond it moves out to the floor's edge (a plain
    wall is barely measured, so the outermost dense layer can be the front of a sofa or a wardrobe before it).
    """
    try:
        a = alignment_transform(points, world_from_camera, seed=seed, axes=axes)
    except (ValueError, np.linalg.LinAlgError):
        return None
    q = transform_points(points, a)
    c = transform_points(world_from_camera[:, :3, 3], a)
    if not c[:, 2].min() > 0:  # cameras under the "floor": the alignment found none
        return None
    # The alignment's floor (the lowest dense layer that is thinnest) rather than the outermost layer:
    # mismatched depth under a plain floor can form a layer below it.
    sides = [(np.array([0.0, 0.0, -1.0]), 0.0)]
    floor = q[np.abs(q[:, 2]) < 1.5 * bin_size]
    for ax in range(3):
        for sign, inside in ((-1, c[:, ax].min()), (1, c[:, ax].max())):
            if ax == 2 and sign < 0:
                continue
            # the ceiling must be a peak of the heights: the walls' points spread evenly over them, and the top
            # of their measured part would otherwise be a "ceiling" that cuts the walls off
            at = _outer_layer(q[:, ax], inside, sign, bin_size, min_frac, peak=3.0 if ax == 2 else 0.0)
            if ax == 2 and at is not None and at < min_ceiling * c[:, 2].max():
                at = None  # a desk top or a shelf under which a person held the camera, not the ceiling
            if ax < 2 and at is not None:
                at = _wall_side(floor[:, ax], at, sign, bin_size, floor_reach)
            if at is not None:
                sides.append((sign * np.eye(3)[ax], sign * at))
    rot, shift = a[:3, :3], a[:3, 3]
    normals, offsets = [], []
    for n, off in sides:
        if axes is None:
            n, off = _refine_side(q, n, off, 1.5 * bin_size)
        else:  # the lines' axes are truer than a plane fitted to a few measured patches: the offset only
            near = q[np.abs(q @ n - off) < 1.5 * bin_size]
            off = float(np.median(near @ n)) if len(near) >= 50 else off
        normals.append(rot.T @ n)  # aligned n.q < off  <=>  (R^T n).x < off - n.shift
        offsets.append(off - n @ shift)
    return RoomBox(np.array(normals), np.array(offsets))
