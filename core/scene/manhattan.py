"""The room's three axes (up and the two wall directions) from straight lines in posed keyframes.

A blank wall gives the plane sweep almost no depth, so axes fitted to the measured cloud tilt with
whatever clutter was measured (2-13 degrees off on the validation rooms' own geometry). Its edges are
still in every image: the wall's corners, the skirting, the ceiling line, door and window frames, and
furniture, built along the same three directions. Each line segment (OpenCV's LSD) and the camera centre
span a plane; a world direction d that the line runs along lies in that plane (normal . d = 0). The axes
are the orthonormal frame, near the cameras' up, along which the most line length runs: a grid search
over the up direction's tilt and the walls' yaw, coarse to fine, each line counting for the axis it fits
best (a Gaussian in the sine of the angle). Intrinsics and poses come from the SfM, so the lines of all
keyframes vote in one world frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["line_plane_normals", "line_segments", "manhattan_axes"]


def line_segments(image: np.ndarray, min_length: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """The straight line segments (OpenCV's LSD) of ``image`` (H,W,3) uint8 RGB at least ``min_length`` x its
    long side long: endpoints (L,4) x0, y0, x1, y1 in pixels (corner-based) and lengths (L,) in pixels."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    found = cv2.createLineSegmentDetector().detect(grey)[0]
    if found is None:
        return np.zeros((0, 4)), np.zeros(0)
    seg = found.reshape(-1, 4).astype(np.float64)
    length = np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1])
    keep = length >= min_length * max(grey.shape)
    return seg[keep], length[keep]


def line_plane_normals(image: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray,
                       min_length: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """World-frame unit normals (L,3) of the planes through the camera centre and each line segment of
    ``image`` (H,W,3) uint8 RGB at least ``min_length`` x its long side long, and the lengths (L,) in pixels.

    K: (3,3) intrinsics of that image size; world_from_camera: (4,4), OpenCV camera axes.
    """
    seg, length = line_segments(image, min_length)
    if not len(seg):
        return np.zeros((0, 3)), np.zeros(0)
    k_inv = np.linalg.inv(np.asarray(K, np.float64))
    ones = np.ones((len(seg), 1))
    a = np.hstack([seg[:, :2] + 0.5, ones]) @ k_inv.T  # pixel centres, as the plane sweep
    b = np.hstack([seg[:, 2:] + 0.5, ones]) @ k_inv.T
    n = np.cross(a, b)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n @ np.asarray(world_from_camera, np.float64)[:3, :3].T, length


def _perpendicular(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors completing ``u`` (3,) to an orthonormal basis."""
    a = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    return a, np.cross(u, a)


def _frames(up: np.ndarray, tilt: float, tilt_step: float, yaw0: float, yaw_span: float, yaw_step: float) -> np.ndarray:
    """(C,3,3) candidate frames, rows (x, y, up): ups tilted up to ``tilt`` degrees from ``up`` in two
    directions, and for each the x axis at yaws yaw0 +- yaw_span (degrees about that up)."""
    a, b = _perpendicular(up)
    tilts = np.tan(np.radians(np.arange(-tilt, tilt + 1e-9, tilt_step)))
    yaws = np.radians(np.arange(yaw0 - yaw_span, yaw0 + yaw_span + 1e-9, yaw_step))
    out = []
    for t1 in tilts:
        for t2 in tilts:
            u = up + t1 * a + t2 * b
            u /= np.linalg.norm(u)
            # the yaw is measured from the projection of ``a`` so that it means the same for every tilt
            a2 = a - (a @ u) * u
            a2 /= np.linalg.norm(a2)
            b2 = np.cross(u, a2)
            x = np.cos(yaws)[:, None] * a2 + np.sin(yaws)[:, None] * b2
            out.append(np.stack([x, np.cross(u, x), np.repeat(u[None], len(yaws), 0)], 1))
    return np.concatenate(out)


def _scores(frames: np.ndarray, normals: np.ndarray, weights: np.ndarray, sigma: float, chunk: int = 256) -> np.ndarray:
    """(C,) line length along each frame's axes: a line counts for its best axis, exp(-(n.d)^2 / 2 sigma^2)."""
    out = np.empty(len(frames))
    for c in range(0, len(frames), chunk):
        dots = np.einsum("cad,ld->cla", frames[c:c + chunk], normals)
        out[c:c + chunk] = np.exp(-(dots ** 2) / (2 * sigma ** 2)).max(2) @ weights
    return out


def manhattan_axes(images: Sequence[np.ndarray], intrinsics: Sequence[np.ndarray], world_from_camera: np.ndarray,
                   up: np.ndarray, max_tilt: float = 20.0, min_lines: int = 50,
                   max_lines: int = 4000) -> np.ndarray | None:
    """(3,3) rows: the walls' two directions and up (the sign of ``up``), or None with under ``min_lines`` lines.

    images: keyframes (H,W,3) uint8 RGB; intrinsics: (3,3) each, of that image size; world_from_camera:
    (M,4,4); up: (3,) the cameras' up (``align.up_prior``), searched within ``max_tilt`` degrees; the
    ``max_lines`` longest lines vote (the search's cost is linear in them).
    """
    found = [line_plane_normals(im, K, T) for im, K, T in zip(images, intrinsics, world_from_camera)]
    normals = np.concatenate([f[0] for f in found]) if found else np.zeros((0, 3))
    weights = np.concatenate([f[1] for f in found]) if found else np.zeros(0)
    if len(normals) < min_lines:
        return None
    if len(normals) > max_lines:
        keep = np.argsort(-weights)[:max_lines]
        normals, weights = normals[keep], weights[keep]
    u = np.asarray(up, np.float64) / np.linalg.norm(up)
    yaw, best = 45.0, None
    # (tilt span, tilt step, yaw span, yaw step, sigma) in degrees: the yaw repeats every 90 degrees
    for tilt, t_step, y_span, y_step, sigma in ((max_tilt, 4.0, 45.0, 3.0, 3.0), (4.0, 1.0, 4.0, 1.0, 1.5),
                                                (1.0, 0.25, 1.0, 0.25, 1.0)):
        cands = _frames(u, tilt, t_step, yaw, y_span, y_step)
        best = cands[int(np.argmax(_scores(cands, normals, weights, np.sin(np.radians(sigma)))))]
        u = best[2]
        a, b = _perpendicular(u)
        a2 = a - (a @ u) * u
        a2 /= np.linalg.norm(a2)
        yaw = float(np.degrees(np.arctan2(best[0] @ np.cross(u, a2), best[0] @ a2)))
    return best
