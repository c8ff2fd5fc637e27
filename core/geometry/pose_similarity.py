"""The similarity between two sets of camera poses of the same frames.

A walk's camera centres lie near a line or a plane, so a similarity fitted to the centres alone (Umeyama)
leaves the rotation about that line loose: the path fits within a centimetre while the room around it
swings by decimetres. The cameras' orientations fix that rotation.
"""

from __future__ import annotations

import numpy as np


def pose_similarity(src_world_from_camera: np.ndarray, dst_world_from_camera: np.ndarray
                    ) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) with ``dst ~= s * R @ src + t`` for the same N cameras posed in two frames.

    src_world_from_camera, dst_world_from_camera: (N,4,4) OpenCV world_from_camera, N >= 1.
    The rotation is the chordal mean of ``R_dst R_src^T`` over the cameras; scale and translation then
    come from the centres by least squares (scale 1 when the centres do not spread).
    """
    a = np.asarray(src_world_from_camera, np.float64)
    b = np.asarray(dst_world_from_camera, np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[1:] != (4, 4) or len(a) == 0:
        raise ValueError(f"need two (N,4,4) pose arrays of the same N >= 1, got {a.shape} and {b.shape}")
    u, _, vt = np.linalg.svd(np.einsum("nij,nkj->ik", b[:, :3, :3], a[:, :3, :3]))  # sum of R_b R_a^T
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    ca, cb = a[:, :3, 3], b[:, :3, 3]
    da, db = (ca - ca.mean(0)) @ rot.T, cb - cb.mean(0)
    den = float((da * da).sum())
    scale = float((da * db).sum() / den) if den > 1e-18 else 1.0
    return scale, rot, cb.mean(0) - scale * rot @ ca.mean(0)
