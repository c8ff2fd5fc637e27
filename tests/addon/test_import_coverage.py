"""The Blender import says how much of the video it placed: a WARNING naming the frames it could not
place, a camera keyed on every video frame, and an all-blank video refused with nothing left behind.
Real worker, real videos (the demo video with its middle third painted over)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import REPO, bpy

from ov3r.core.video import iter_frames
from ov3r.core.video.writer import write_video

VIDEO = REPO / "assets" / "sample_room.mp4"


@pytest.fixture(scope="module")
def blank_middle(tmp_path_factory):
    """(path, first blank frame, last blank frame): the demo video at 320 px, its middle third one flat colour."""
    frames = [f.image for f in iter_frames(VIDEO, 320)]
    a, b = len(frames) // 3, 2 * len(frames) // 3
    out = tmp_path_factory.mktemp("cov") / "milieu vide.mp4"
    write_video(out, [np.full_like(im, (200, 190, 180)) if a <= i < b else im for i, im in enumerate(frames)], fps=30)
    return out, a, b - 1


def _snapshot() -> dict[str, int]:
    return {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "cameras", "collections", "movieclips")}


def test_a_blank_middle_third_is_imported_with_a_warning_naming_it(registered_addon, blank_middle, capfd):
    video, a, b = blank_middle
    assert bpy.ops.ov3r.import_video(filepath=str(video), max_side=320, wait=True) == {"FINISHED"}
    job = registered_addon.ov3r_addon.job_runner.active_job()
    ranges = [(int(x), int(y)) for x, y in re.findall(r"frames (\d+)-(\d+) \(", job.warning)]
    assert ranges, job.warning
    first, last = ranges[0]
    # the named range covers the blank third and little more (up to the keyframes around it)
    assert first <= a and last >= b and a - first <= 20 and last - b <= 20, (ranges, a, b)
    assert "could not be placed: blank frames" in job.warning
    assert bpy.context.window_manager.ov3r_job.warning == job.warning
    assert "Ov3R: only" in capfd.readouterr().out  # the operator's WARNING report

    cam = bpy.context.scene.camera
    keyed = {round(k.co[0]) for fc in registered_addon.ov3r_addon.compat.action_fcurves(cam.animation_data) for k in fc.keyframe_points}
    assert len(keyed) == 120, "every video frame should have a camera key"
    props = cam["ov3r"].to_dict()
    assert 0.4 < props["placed_fraction"] < 0.9
    start = bpy.context.scene.frame_start
    assert [list(r) for r in props["unplaced_frames"]][0] == [start + first, start + last]


def test_an_all_blank_video_is_an_error_that_leaves_nothing(registered_addon, tmp_path):
    video = tmp_path / "écran noir.mp4"
    write_video(video, [np.full((240, 320, 3), 128, np.uint8)] * 30, fps=30)
    before = _snapshot()
    with pytest.raises(RuntimeError, match="frames of the video are blank"):
        bpy.ops.ov3r.import_video(filepath=str(video), wait=True)
    assert "blank" in bpy.context.window_manager.ov3r_job.error
    assert _snapshot() == before
