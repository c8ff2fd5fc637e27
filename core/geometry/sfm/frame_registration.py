"""Cameras for the frames between keyframes, registered from their point tracks.

The tracks that COLMAP used as keyframe keypoints got 3D points; a frame between two keyframes sees many
of the same tracks, so its camera follows from those 2D-3D correspondences (COLMAP's absolute pose:
LO-RANSAC P3P and a refinement) instead of from interpolating its neighbours' cameras, which misses
every bob and turn of a hand-held walk between them.
"""

from __future__ import annotations

import numpy as np

from ..engine import FrameTracks, KeyframeTracks


def track_points(model: object, keyframe_of_image: dict[int, int],
                 tracks: list[KeyframeTracks | None]) -> tuple[np.ndarray, np.ndarray]:
    """The 3D point of each track that COLMAP triangulated.

    model:             the pycolmap Reconstruction (tracks appended after the SIFT keypoints of each image,
                       as ``track_matches.add_track_matches`` writes them).
    keyframe_of_image: pycolmap image id -> index into ``tracks``.
    Returns (T,) int64 sorted track ids and (T,3) float64 positions (a track seen as two 3D points keeps
    the one with the longer COLMAP track).
    """
    best: dict[int, tuple[int, np.ndarray]] = {}
    for image_id, image in model.images.items():
        k = keyframe_of_image.get(image_id)
        t = tracks[k] if k is not None else None
        if t is None or not len(t.ids) or not image.has_pose:
            continue
        points2d = image.points2D
        offset = len(points2d) - len(t.ids)
        for j, tid in enumerate(t.ids.tolist()):
            p = points2d[offset + j]
            if p.has_point3D():
                point = model.points3D[p.point3D_id]
                length = point.track.length()
                if tid not in best or length > best[tid][0]:
                    best[tid] = (length, point.xyz)
    ids = np.array(sorted(best), np.int64)
    xyz = np.array([best[i][1] for i in ids.tolist()], np.float64).reshape(-1, 3)
    return ids, xyz


def register_frames(frames: list[FrameTracks], ids: np.ndarray, xyz: np.ndarray, camera: object,
                    min_inliers: int = 30, min_inlier_ratio: float = 0.5,
                    max_error_px: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Absolute pose of each frame from its tracks that have a 3D point.

    frames:  the frames to register; ids (T,) sorted track ids with 3D points xyz (T,3).
    camera:  the pycolmap Camera of the keyframes (same pixels as the tracks).
    A frame is kept with at least ``min_inliers`` inliers that make at least ``min_inlier_ratio`` of its
    correspondences. Returns (R,) int64 frame indices and (R,4,4) float64 world_from_camera (OpenCV axes).
    """
    import pycolmap

    options = pycolmap.AbsolutePoseEstimationOptions()
    options.ransac.max_error = max_error_px
    index, poses = [], []
    for f in frames:
        seen = np.isin(f.ids, ids)
        if seen.sum() < min_inliers:
            continue
        xy = f.xy[seen].astype(np.float64) + 0.5  # COLMAP puts pixel centres at +0.5
        found = pycolmap.estimate_and_refine_absolute_pose(xy, xyz[np.searchsorted(ids, f.ids[seen])], camera, options)
        if found is None or found["num_inliers"] < max(min_inliers, min_inlier_ratio * len(xy)):
            continue
        m = np.eye(4)
        m[:3, :4] = np.asarray(found["cam_from_world"].matrix(), np.float64)
        index.append(f.index)
        poses.append(np.linalg.inv(m))
    return np.array(index, np.int64), np.array(poses, np.float64).reshape(-1, 4, 4)
