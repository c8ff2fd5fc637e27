"""Frames between keyframes registered from their point tracks' 3D points, against the truth of a
ray-cast room walk (no Blender needed)."""

from __future__ import annotations

import numpy as np
from ov3r.core.bench.metrics import apply_sim3, umeyama_sim3
from ov3r.core.geometry.frame_placement import place_frames
from ov3r.core.geometry.sfm.colmap_sfm import run_sfm
from ov3r.core.geometry.sfm.engine import SfmSettings
from ov3r.core.jobs import JobContext
from ov3r.core.scene.cameras import Cameras
from ov3r.core.scene.frame_path import INTERPOLATED, REGISTERED
from ov3r.core.video.tracks import TrackRecorder
from sfm_synthetic import room_orbit


def test_frames_between_keyframes_get_their_own_cameras():
    K, poses, imgs, _ = room_orbit(n=37, w=256, h=192, arc_deg=60.0)
    every = 4  # keyframes 0, 4, ..., 36; the 27 frames between them are registered from their tracks
    rec = TrackRecorder()
    tracks = []
    for i, im in enumerate(imgs):
        rec.step(im, index=i)
        if i % every == 0:
            tracks.append(rec.keyframe())
    frames = [f for t in tracks for f in t.between]
    assert len(frames) == 27
    kw = {**SfmSettings().sfm_kwargs(), "mapping_runs": 1}
    sparse = run_sfm([imgs[i] for i in range(0, 37, every)], JobContext(), intrinsics=K, tracks=tracks,
                     frames=frames, **kw)
    assert len(sparse.registered) == 10
    between = set(range(37)) - set(range(0, 37, every))
    got = {int(i): p for i, p in zip(sparse.frame_index, sparse.frame_poses) if int(i) in between}
    assert len(got) >= 0.9 * len(between)

    kf_centres = sparse.world_from_camera[:, :3, 3]
    s, R, t = umeyama_sim3(kf_centres, poses[sparse.registered * every, :3, 3])  # the keyframes fix the frame
    idx = np.array(sorted(got))
    centres = apply_sim3(np.array([got[i][:3, 3] for i in idx]), s, R, t)
    step = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).mean()
    err = np.linalg.norm(centres - poses[idx, :3, 3], axis=1)
    assert np.median(err) < 0.05 * step, (np.median(err), step)  # far inside one frame's motion
    rot_err = [np.degrees(np.arccos(np.clip((np.trace(R @ got[i][:3, :3] @ poses[i, :3, :3].T) - 1) / 2, -1, 1)))
               for i in idx]
    assert np.median(rot_err) < 0.2

    # placement keeps them as registered, the rest between keyframes interpolated
    kf_index = np.arange(0, 37, every)
    cams = Cameras(np.repeat(K[None].astype(np.float32), 10, 0), sparse.world_from_camera.astype(np.float32),
                   kf_index / 15.0, kf_index.astype(np.int32), (256, 192))
    path = place_frames(np.arange(37) / 15.0, kf_index, cams,
                        {"index": idx, "world_from_camera": np.array([got[i] for i in idx])})
    assert set(np.flatnonzero(path.status == REGISTERED)) == set(kf_index) | set(idx.tolist())
    assert set(np.flatnonzero(path.status == INTERPOLATED)) == between - set(idx.tolist())
    np.testing.assert_allclose(path.cameras.world_from_camera[idx[0]], got[idx[0]], atol=1e-5)
