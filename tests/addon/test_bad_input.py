"""Bad input through the real import operator and the real worker: a clear error report
and nothing left half-built in Blender. Cancel in the middle of a real reconstruction."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path


import pytest
from conftest import REPO, bpy

sys.path.insert(0, str(REPO / "tests" / "core"))
from video_fixtures import make_pan_video, pan_frames  # noqa: E402

from ov3r.core.video.writer import write_video  # noqa: E402


def _snapshot() -> dict[str, int]:
    d = bpy.data
    return {k: len(getattr(d, k)) for k in ("objects", "meshes", "cameras", "collections", "movieclips",
                                            "materials", "node_groups")}


def _not_a_video(d: Path) -> Path:
    p = d / "notes de réunion.mp4"
    p.write_text("this is a text file, not a video\n" * 100)
    return p


def _truncated(d: Path) -> Path:
    full = make_pan_video(d / "full.mp4", n=60)
    p = d / "truncated.mp4"
    p.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return p


def _one_frame(d: Path) -> Path:
    p = d / "one frame.mp4"
    write_video(p, pan_frames(1, 0.0))
    return p


def _static(d: Path) -> Path:
    p = d / "tripod ☕.mp4"
    write_video(p, [pan_frames(1, 0.0)[0]] * 45)
    return p


@pytest.mark.parametrize(
    "make, expected",
    [
        (_not_a_video, "not a readable video"),
        (_truncated, "not a readable video|cannot decode|no decodable"),
        (_one_frame, "single frame"),
        (_static, "hardly moves"),
    ],
    ids=["not-a-video", "truncated", "one-frame", "static-camera"],
)
def test_bad_video_reports_and_leaves_nothing(registered_addon, tmp_path, make, expected, capsys):
    d = tmp_path / "vidéos à tester"
    d.mkdir()
    video = make(d)
    before = _snapshot()
    with pytest.raises(RuntimeError) as err:
        bpy.ops.ov3r.import_video(filepath=str(video), wait=True)
    import re

    assert re.search(expected, str(err.value)), str(err.value)
    assert _snapshot() == before
    assert not registered_addon.ov3r_addon.job_runner.is_running()


def test_missing_file_reports(registered_addon, tmp_path):
    before = _snapshot()
    with pytest.raises(RuntimeError, match="not found|does not exist|no such"):
        bpy.ops.ov3r.import_video(filepath=str(tmp_path / "nope.mp4"), wait=True)
    assert _snapshot() == before


def test_cancel_in_the_middle_of_a_real_reconstruction(registered_addon, tmp_path):
    """A real video through the real sfm worker: cancel once the cloud has started to grow."""
    from ov3r.core.scenegen.orbit import OrbitConfig, cached_orbit

    runner = registered_addon.ov3r_addon.job_runner
    video = tmp_path / "scan à annuler.mp4"
    shutil.copy(cached_orbit(OrbitConfig()).video_path, video)
    before = _snapshot()
    job = runner.start_import(bpy.context, str(video), runner.ImportSettings(), use_timer=False)
    deadline = time.monotonic() + 300
    while job.step() and job.partials_loaded == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.partials_loaded > 0, f"no partial result arrived ({job.state}: {job.message})"
    assert _snapshot() != before  # the cloud was growing in the scene
    pid = job.worker.proc.pid
    t0 = time.monotonic()
    job.cancel()
    assert time.monotonic() - t0 < 5
    assert job.state == runner.CANCELLED and not job.worker.is_running()
    assert _snapshot() == before
    with pytest.raises(ProcessLookupError):
        import os

        os.killpg(pid, 0)  # the whole process group is gone
    assert not Path(job.scene_path).exists()
