"""Point tracks through every frame (core.video.tracks) and their use as COLMAP matches."""

from __future__ import annotations

import numpy as np
import pytest
from ov3r.core.geometry.engine import KeyframeTracks
from ov3r.core.geometry.sfm.track_matches import add_track_matches, shared_tracks
from ov3r.core.video import KeyframeSettings, iter_frames, select_keyframes
from ov3r.core.video.tracks import TrackRecorder
from ov3r.core.video.writer import write_video
from video_fixtures import pan_frames


def _pairs_shift(kfs, step: float) -> list[tuple[int, float, float]]:
    """(shared tracks, median x error, median |y|) of consecutive keyframes against a pan of ``step`` px/frame."""
    out = []
    pairs = shared_tracks([k.tracks for k in kfs], 1, 1)
    for (a, b), rows in sorted(pairs.items()):
        d = kfs[b].tracks.xy[rows[:, 1]] - kfs[a].tracks.xy[rows[:, 0]]
        expect = -step * (kfs[b].index - kfs[a].index)  # the window slides right: content moves left
        out.append((len(rows), float(np.median(np.abs(d[:, 0] - expect))), float(np.median(np.abs(d[:, 1])))))
    return out


def test_tracks_follow_a_decoded_pan(tmp_path):
    path = tmp_path / "pan.mp4"
    write_video(path, pan_frames(60, 5.0), fps=30)
    kfs, _ = select_keyframes(iter_frames(path), KeyframeSettings())
    assert all(k.tracks is not None for k in kfs) and len(kfs) >= 4
    rows = _pairs_shift(kfs, 5.0)
    assert len(rows) == len(kfs) - 1  # every consecutive pair shares tracks
    for n, ex, ey in rows:
        assert n >= 100
        assert ex < 0.5 and ey < 0.5  # sub-pixel after H.264 and 8+ frames of chained tracking
    ids = np.concatenate([k.tracks.ids for k in kfs])
    assert len(np.unique(ids)) > len(kfs[0].tracks.ids)  # corners are replenished as the view moves


def test_tracks_survive_a_global_light_change(tmp_path):
    frames = pan_frames(40, 4.0)
    frames = frames[:20] + [(f.astype(np.float32) * 0.5).astype(np.uint8) for f in frames[20:]]
    path = tmp_path / "dimmed.mp4"
    write_video(path, frames, fps=30)
    rec = TrackRecorder()
    live = []
    for f in iter_frames(path):
        rec.step(f.image)
        if f.index in (19, 20):
            live.append(rec.keyframe())
    before, after = live
    common = np.intersect1d(before.ids, after.ids)
    assert len(common) >= 0.8 * len(before.ids)  # the lights went down by half between frames 19 and 20
    d = after.xy[np.searchsorted(after.ids, common)] - before.xy[np.searchsorted(before.ids, common)]
    assert np.median(np.abs(d[:, 0] + 4.0)) < 0.5


def test_no_tracks_on_a_blank_wall_with_sensor_noise():
    rng = np.random.default_rng(0)
    rec = TrackRecorder()
    for _ in range(5):
        wall = np.clip(200 + rng.normal(0, 1.0, (240, 320, 1)), 0, 255).astype(np.uint8).repeat(3, 2)
        rec.step(wall)
        assert len(rec.keyframe().ids) == 0  # noise is not structure


def test_shared_tracks_pairs_by_gap_and_count():
    def kt(ids):
        ids = np.asarray(ids, np.int64)
        return KeyframeTracks(ids, np.zeros((len(ids), 2), np.float32))

    tracks = [kt([1, 2, 3, 4]), kt([2, 3, 4, 5]), None, kt([3, 4, 5, 6]), kt([])]
    pairs = shared_tracks(tracks, min_shared=2, max_gap=2)
    assert set(pairs) == {(0, 1), (1, 3)}  # (0, 3) is 3 keyframes apart; keyframe 2 has no tracks
    np.testing.assert_array_equal(pairs[(0, 1)], [[1, 0], [2, 1], [3, 2]])
    assert set(shared_tracks(tracks, min_shared=3, max_gap=3)) == {(0, 1), (1, 3)}
    assert set(shared_tracks(tracks, min_shared=2, max_gap=3)) == {(0, 1), (0, 3), (1, 3)}


def test_track_matches_go_into_the_colmap_database(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    import cv2

    frames = pan_frames(3, 10.0)
    names = [f"{i:06d}.png" for i in range(3)]
    (tmp_path / "images").mkdir()
    for n, f in zip(names, frames):
        cv2.imwrite(str(tmp_path / "images" / n), f[..., ::-1])
    db_path = tmp_path / "database.db"
    pycolmap.extract_features(db_path, tmp_path / "images", image_names=names, device=pycolmap.Device.cpu)
    db = pycolmap.Database.open(str(db_path))
    ids = {im.name: im.image_id for im in db.read_all_images()}
    sift = [len(db.read_keypoints(ids[n])) for n in names]
    db.close()

    xy = np.array([[50.0, 60.0], [100.0, 120.0], [150.0, 30.0]], np.float32)
    tracks = [KeyframeTracks(np.array([7, 8, 9]), xy), KeyframeTracks(np.array([7, 8, 9]), xy - [10, 0]), None]
    pairs = add_track_matches(db_path, names, tracks, min_shared=3, max_gap=2)
    assert pairs == [(names[0], names[1])]
    db = pycolmap.Database.open(str(db_path))
    kp0 = db.read_keypoints(ids[names[0]])
    assert len(kp0) == sift[0] + 3
    np.testing.assert_allclose(kp0[sift[0]:, :2], xy + 0.5)  # COLMAP's pixel centres
    m = db.read_matches(ids[names[0]], ids[names[1]])
    np.testing.assert_array_equal(m, [[sift[0] + k, sift[1] + k] for k in range(3)])
    assert len(db.read_keypoints(ids[names[2]])) == sift[2]
    db.close()


def test_every_frame_between_keyframes_keeps_its_tracks(tmp_path):
    """Each keyframe carries the tracks of the frames since the previous one, in order, at the keyframe
    images' size, with positions that follow the pan; thinning hands a dropped keyframe's frames on."""
    path = tmp_path / "pan.mp4"
    write_video(path, pan_frames(60, 5.0), fps=30)
    kfs, n = select_keyframes(iter_frames(path), KeyframeSettings())
    seen = [f.index for k in kfs for f in k.tracks.between] + [k.index for k in kfs]
    assert sorted(seen) == list(range(kfs[-1].index + 1))  # every frame up to the last keyframe, once
    for k in kfs[1:]:
        assert [f.index for f in k.tracks.between] == list(range(k.index - len(k.tracks.between), k.index))
        for f in k.tracks.between:
            common, rf, rk = np.intersect1d(f.ids, k.tracks.ids, return_indices=True)
            d = k.tracks.xy[rk, 0] - f.xy[rf, 0]
            assert len(common) >= 50 and np.median(np.abs(d + 5.0 * (k.index - f.index))) < 0.5

    few, _ = select_keyframes(iter_frames(path), KeyframeSettings(max_keyframes=3))
    assert len(few) == 3
    seen = sorted(f.index for k in few for f in k.tracks.between) + [k.index for k in few]
    assert sorted(seen) == list(range(few[-1].index + 1))  # the dropped keyframes' frames were handed on


def test_a_long_video_keeps_few_keyframes_evenly_spread_and_every_tracked_frame(tmp_path):
    """Past twice max_keyframes, every other keyframe goes and only every other candidate is kept after
    (memory stays bounded on long videos); the kept ones stay evenly spread, and the dropped ones' frames
    are handed on."""
    path = tmp_path / "long_pan.mp4"
    write_video(path, pan_frames(240, 5.0), fps=30)
    all_kfs, _ = select_keyframes(iter_frames(path), KeyframeSettings())
    few, _ = select_keyframes(iter_frames(path), KeyframeSettings(max_keyframes=4))
    assert len(all_kfs) > 4 * 4  # the bound was hit twice at least
    assert len(few) == 4
    gaps = np.diff([k.index for k in few])
    assert gaps.max() <= 2.5 * gaps.min(), [k.index for k in few]
    seen = sorted(f.index for k in few for f in k.tracks.between) + [k.index for k in few]
    assert sorted(seen) == list(range(few[-1].index + 1))
