"""Point tracks as COLMAP correspondences: every pair of keyframes that shares tracks gets those tracks
as matches, beside the SIFT matches, before COLMAP's own geometric verification.

Frame-to-frame tracking follows a point through small steps, so it links keyframes whose descriptors
do not match (flat shading, light changes, wide baselines). The verification (RANSAC on the combined
matches) keeps what is geometrically consistent, as for SIFT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine import KeyframeTracks

#: the identity affine shape COLMAP stores with a keypoint (a11, a12, a21, a22)
_SHAPE = np.array([1.0, 0.0, 0.0, 1.0], np.float32)


def shared_tracks(tracks: list[KeyframeTracks | None], min_shared: int,
                  max_gap: int) -> dict[tuple[int, int], np.ndarray]:
    """(i, j) with i < j <= i + max_gap -> (M,2) int64 row indices into tracks[i] / tracks[j] of their
    common ids, for every such pair of keyframes sharing at least ``min_shared`` tracks."""
    out: dict[tuple[int, int], np.ndarray] = {}
    last_seen: dict[int, list[int]] = {}  # id -> keyframes that saw it, to visit only pairs that share one
    for j, t in enumerate(tracks):
        if t is None or len(t.ids) == 0:
            continue
        partners = {i for tid in t.ids.tolist() for i in last_seen.get(tid, ())}
        for i in sorted(k for k in partners if j - k <= max_gap):
            ti = tracks[i]
            common, ri, rj = np.intersect1d(ti.ids, t.ids, assume_unique=True, return_indices=True)
            if len(common) >= min_shared:
                out[(i, j)] = np.stack([ri, rj], 1).astype(np.int64)
        for tid in t.ids.tolist():
            last_seen.setdefault(tid, []).append(j)
    return out


def add_track_matches(db_path: Path, names: list[str], tracks: list[KeyframeTracks | None],
                      min_shared: int = 15, max_gap: int = 2) -> list[tuple[str, str]]:
    """Append the tracks to each image's keypoints in the COLMAP database and their shared ids to
    each pair's raw matches (merged with the SIFT matches already there).

    names:   image name of each keyframe, in the same order as ``tracks``.
    max_gap: pairs at most this many keyframes apart (Lucas-Kanade drifts as a track grows older;
             SIFT makes the longer links).
    Returns every image pair with raw matches, for :func:`pycolmap.verify_matches`.
    """
    import pycolmap

    pairs = shared_tracks(tracks, min_shared, max_gap)
    db = pycolmap.Database.open(str(db_path))
    try:
        ids = {im.name: im.image_id for im in db.read_all_images()}
        image_id = [ids[n] for n in names]
        offset = []
        for k, t in enumerate(tracks):
            kps = db.read_keypoints(image_id[k])
            offset.append(len(kps))
            if t is None or len(t.ids) == 0:
                continue
            extra = np.zeros((len(t.ids), kps.shape[1] if kps.ndim == 2 and kps.shape[1] else 6), np.float32)
            extra[:, :2] = t.xy + 0.5  # COLMAP puts pixel centres at +0.5
            if extra.shape[1] == 6:
                extra[:, 2:] = _SHAPE
            db.update_keypoints(image_id[k], np.concatenate([kps.reshape(-1, extra.shape[1]), extra]))
        with_matches = {(a, b) for a in range(len(names)) for b in range(a + 1, len(names))
                        if db.exists_matches(image_id[a], image_id[b])}
        for (a, b), rows in pairs.items():
            klt = rows + np.array([offset[a], offset[b]], np.int64)
            if (a, b) in with_matches:
                old = db.read_matches(image_id[a], image_id[b]).astype(np.int64)
                db.delete_matches(image_id[a], image_id[b])
                klt = np.concatenate([old.reshape(-1, 2), klt])
            db.write_matches(image_id[a], image_id[b], klt.astype(np.uint32))
        all_pairs = sorted(with_matches | set(pairs))
    finally:
        db.close()
    return [(names[a], names[b]) for a, b in all_pairs]
