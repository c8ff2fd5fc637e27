"""Every video frame gets a camera; coverage and the unplaced ranges are honest."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.geometry.frame_placement import (BLANK, LIGHT_CHANGED, LOW_TEXTURE, UNMATCHED, coverage_report, coverage_summary,
                                           describe_unplaced, keyframe_reason, place_frames, reason_ranges)
from core.scene import Cameras, SceneFormatError, SemanticScene, load_scene, save_scene
from core.scene.align import transform_scene
from core.scene.frame_path import INTERPOLATED, REGISTERED, UNPLACED, FramePath


def _cams(frames: np.ndarray, fps: float = 15.0) -> Cameras:
    """Cameras on a line x = 0.1 * frame, yawing 2 degrees a frame."""
    m = len(frames)
    wfc = np.tile(np.eye(4), (m, 1, 1))
    wfc[:, :3, :3] = Rotation.from_euler("z", frames * 2.0, degrees=True).as_matrix()
    wfc[:, 0, 3] = 0.1 * frames
    K = np.tile(np.array([[100.0, 0, 32], [0, 100, 24], [0, 0, 1]]), (m, 1, 1))
    return Cameras(K.astype(np.float32), wfc.astype(np.float32), frames / fps, frames.astype(np.int32), (64, 48))


def test_frames_between_registered_keyframes_are_interpolated_exactly():
    keyframes = np.array([0, 6, 12, 18, 24])
    path = place_frames(np.arange(30) / 15.0, keyframes, _cams(keyframes))
    assert len(path) == 30 and path.coverage() == 1.0 and path.unplaced_ranges() == []
    assert (path.status[keyframes] == REGISTERED).all()
    assert (path.status[[1, 5, 13, 29]] == INTERPOLATED).all()
    wfc = path.cameras.world_from_camera
    # a constant-rate motion: slerp + linear interpolation land on the same line and yaw
    np.testing.assert_allclose(wfc[9, :3, 3], [0.9, 0, 0], atol=1e-5)
    np.testing.assert_allclose(Rotation.from_matrix(wfc[9, :3, :3]).as_euler("xyz", degrees=True), [0, 0, 18],
                               atol=1e-3)
    # after the last keyframe the camera is held, and still placed (the selector saw little motion)
    np.testing.assert_allclose(wfc[29], wfc[24])
    np.testing.assert_array_equal(path.cameras.frame_index, np.arange(30))
    np.testing.assert_allclose(path.cameras.timestamps, np.arange(30) / 15.0)


def test_a_failed_keyframe_makes_its_neighbourhood_unplaced():
    keyframes = np.array([0, 6, 12, 18, 24, 30, 36])
    registered = np.array([0, 6, 12, 24, 30, 36])  # 18 failed
    path = place_frames(np.arange(40) / 15.0, keyframes, _cams(registered))
    assert path.unplaced_ranges() == [(13, 23)]
    assert (path.status[13:24] == UNPLACED).all() and path.status[12] == REGISTERED and path.status[24] == REGISTERED
    assert path.coverage() == pytest.approx(29 / 40)
    # the unplaced frames still get a (bridged) camera: nothing is missing from the animation
    assert np.isfinite(path.cameras.world_from_camera).all()


def test_keyframes_registered_as_frames_anchor_the_path_like_cameras():
    """The sfm engine keeps every other registered keyframe as a view (a camera) and hands the others on as
    registered frames: the frames around those are interpolated from them, not left unplaced."""
    keyframes = np.array([0, 6, 12, 18, 24])
    truth = _cams(np.arange(30))
    own = np.array([6, 18])
    path = place_frames(np.arange(30) / 15.0, keyframes, _cams(np.array([0, 12, 24])),
                        {"index": own, "world_from_camera": truth.world_from_camera[own]})
    assert path.coverage() == 1.0 and (path.status[keyframes] == REGISTERED).all()
    assert (path.status[[3, 9, 15, 21]] == INTERPOLATED).all()
    np.testing.assert_allclose(path.cameras.world_from_camera[:25, :3, 3], truth.world_from_camera[:25, :3, 3],
                               atol=1e-5)  # the line x = 0.1 * frame, through the views and the frames alike


def test_a_failed_first_keyframe_leaves_the_start_unplaced_and_held():
    keyframes = np.array([0, 10, 20])
    path = place_frames(np.arange(25) / 30.0, keyframes, _cams(np.array([10, 20])))
    assert path.unplaced_ranges() == [(0, 9)]
    np.testing.assert_allclose(path.cameras.world_from_camera[0], path.cameras.world_from_camera[10])


def test_coverage_report_names_ranges_times_and_reasons():
    keyframes = np.array([0, 6, 12, 18, 24, 30, 36])
    path = place_frames(np.arange(40) / 15.0, keyframes, _cams(np.array([0, 6, 12, 24, 30, 36])))
    rng = np.random.default_rng(0)
    blank = np.full((48, 64, 3), 200, np.uint8)
    report = coverage_report(path, {18: blank, 0: rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)})
    assert report["frames"] == 40 and report["registered_frames"] == 6 and report["unplaced_frames"] == 11
    assert report["interpolated_frames"] == 23 and report["fraction"] == pytest.approx(29 / 40)
    (r,) = report["unplaced"]
    assert (r["first"], r["last"], r["reason"]) == (13, 23, "blank frames")
    assert r["start_s"] == pytest.approx(13 / 15) and r["end_s"] == pytest.approx(23 / 15)
    assert describe_unplaced(report) == "frames 13-23 (0:00.9-0:01.5) could not be placed: blank frames"
    assert coverage_summary(report).startswith("placed 72% of the video's 40 frames (6 registered")


def test_keyframe_reason_tells_blank_low_texture_and_unmatched_apart():
    rng = np.random.default_rng(1)
    blank = np.full((120, 160, 3), 90, np.uint8)
    # a smooth gradient: not blank, but nothing to track
    smooth = np.repeat(np.linspace(60, 200, 160, dtype=np.float32)[None, :, None], 120, 0).repeat(3, 2)
    # a shaded plain wall with render noise: hundreds of "corners" by a relative strength, none of real structure
    shade = np.linspace(180, 220, 160)[None, :, None]
    wall = np.clip(shade + rng.normal(0, 1.5, (120, 160, 1)), 0, 255).astype(np.uint8).repeat(3, 2)
    busy = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    assert keyframe_reason(blank) == BLANK
    assert keyframe_reason(smooth.astype(np.uint8)) == LOW_TEXTURE
    assert keyframe_reason(wall) == LOW_TEXTURE
    assert keyframe_reason(busy) == UNMATCHED


def test_an_unplaced_run_is_split_where_its_keyframes_show_something_else():
    rng = np.random.default_rng(2)
    busy = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    wall = np.full((120, 160, 3), 200, np.uint8)
    wall[:, :80] = 190  # one soft edge: not blank, still nothing to track
    images = {20: busy, 24: busy, 28: busy, 40: wall, 44: wall, 48: busy, 52: wall, 60: wall}
    # frames 17-19 take the first keyframe's reason; the lone busy keyframe 48 between walls does not split
    assert reason_ranges(17, 70, images) == [(17, 39, UNMATCHED), (40, 70, LOW_TEXTURE)]
    assert reason_ranges(17, 70, {}) == [(17, 70, UNMATCHED)]
    keyframes = np.array([0, 10, 20, 24, 28, 40, 44, 48, 52, 60, 70])
    path = place_frames(np.arange(80) / 15.0, keyframes, _cams(np.array([0, 10, 70])))
    report = coverage_report(path, images)
    assert [(r["first"], r["last"], r["reason"]) for r in report["unplaced"]] == [(11, 39, UNMATCHED),
                                                                               (40, 69, LOW_TEXTURE)]
    assert describe_unplaced(report).endswith("frames 40-69 (0:02.7-0:04.6) could not be placed: low texture")
    # the same run after a light was switched off: the placed keyframe before it three times as bright
    dimmed = {i: (im // 3 if i < 40 else im) for i, im in images.items()}
    assert reason_ranges(11, 69, {10: busy, **dimmed}) == [(11, 39, LIGHT_CHANGED), (40, 69, LOW_TEXTURE)]
    assert reason_ranges(11, 69, {10: busy, **images})[0] == (11, 39, UNMATCHED)


def test_the_frame_path_survives_save_load_and_alignment(tmp_path):
    keyframes = np.array([0, 6, 12])
    cams = _cams(keyframes)
    scene = SemanticScene.from_points(np.zeros((4, 3), np.float32), np.zeros((4, 3), np.uint8), cameras=cams)
    scene.frame_path = place_frames(np.arange(15) / 15.0, keyframes, cams)
    back = load_scene(save_scene(scene, tmp_path / "s.ov3r.npz"))
    assert isinstance(back.frame_path, FramePath)
    np.testing.assert_array_equal(back.frame_path.status, scene.frame_path.status)
    np.testing.assert_allclose(back.frame_path.cameras.world_from_camera, scene.frame_path.cameras.world_from_camera)
    t = np.eye(4)
    t[:3, 3] = [1.0, 2.0, 3.0]
    moved = transform_scene(back, t)
    np.testing.assert_allclose(moved.frame_path.cameras.world_from_camera[:, :3, 3],
                               back.frame_path.cameras.world_from_camera[:, :3, 3] + [1, 2, 3], atol=1e-5)
    # a scene without a path (older files, partial scenes) still round-trips
    scene.frame_path = None
    assert load_scene(save_scene(scene, tmp_path / "old.ov3r.npz")).frame_path is None


def test_a_bad_status_is_a_format_error():
    keyframes = np.array([0, 6])
    cams = _cams(keyframes)
    scene = SemanticScene.from_points(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.uint8), cameras=cams)
    scene.frame_path = place_frames(np.arange(8) / 15.0, keyframes, cams)
    scene.frame_path.status[3] = 7
    with pytest.raises(SceneFormatError, match="frame_path.status"):
        scene.validate()


def test_path_doubts_name_disagreeing_solves_and_a_focal_length_off_the_rooms_lines():
    from core.pipeline import WARN_FOCAL_DISAGREEMENT, path_doubts

    assert path_doubts({}) == []
    agreed = {"mapping": {"runs": [{}, {}], "agreed": True},
              "focal_from_lines": {"focal": 343.0, "self_calibrated": 355.5, "disagreement": 0.036}}
    assert path_doubts(agreed) == []
    off = {"mapping": {"runs": [{}, {}, {}], "agreed": False},
           "focal_from_lines": {"focal": 343.0, "self_calibrated": 446.3, "disagreement": 0.301, "width": 480}}
    doubts = path_doubts(off)
    assert len(doubts) == 2 and "3 solves of the video disagreed" in doubts[0]
    # fields of view, which mean the same at any resolution: 2 atan(240 / 446.3) = 56.5, 2 atan(240 / 343) = 70.0 degrees
    assert "focal length is uncertain" in doubts[1] and "a 57 degree field of view" in doubts[1] and "70 degrees" in doubts[1]
    assert "--intrinsics" in doubts[1]
    no_estimate = {"focal_from_lines": {"focal": None, "reason": "the keyframes disagree (spread 0.25)"}}
    assert path_doubts(no_estimate) == [] and WARN_FOCAL_DISAGREEMENT == 0.10


def test_cli_forwards_known_intrinsics_to_the_worker(monkeypatch):
    import argparse

    import core.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "WorkerProcess", lambda wargs, python=None: seen.setdefault("wargs", wargs))
    monkeypatch.setattr(cli, "run_job", lambda worker, quiet: "done")
    args = cli.build_parser().parse_args(["reconstruct", "room.mp4", "--intrinsics", "500", "500", "320", "240"])
    assert isinstance(args, argparse.Namespace) and args.intrinsics == [500.0, 500.0, 320.0, 240.0]
    cli._reconstruct("room.mp4", "room.ov3r.npz", args)
    w = seen["wargs"]
    assert w[w.index("--intrinsics") + 1:w.index("--intrinsics") + 5] == ["500.0", "500.0", "320.0", "240.0"]
