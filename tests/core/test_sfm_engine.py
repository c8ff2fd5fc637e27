"""The sfm engine's user-facing failures and its registry entry."""

from __future__ import annotations

import threading
import time

import pytest
from ov3r.core.geometry import Keyframe, get_engine
from ov3r.core.geometry.sfm import SfmEngine
from ov3r.core.jobs import JobCancelled, JobContext, JobError
from sfm_synthetic import texture


def _static_keyframes(n: int = 8) -> list[Keyframe]:
    img = texture(1, 320, 240)
    return [Keyframe(img.copy(), i, i / 10) for i in range(n)]


def test_get_engine():
    eng = get_engine("sfm", num_depths=32)
    assert isinstance(eng, SfmEngine) and eng.name == "sfm" and eng.settings.num_depths == 32
    with pytest.raises(ValueError, match="unknown geometry engine"):
        get_engine("nope")


def test_static_camera_raises_job_error():
    stages = []
    ctx = JobContext(progress_fn=lambda s, d, t: stages.append(s))
    with pytest.raises(JobError, match="could not recover camera motion"):
        SfmEngine().reconstruct(_static_keyframes(), ctx)
    assert "sfm: features" in stages and "sfm: matching" in stages


def test_too_few_keyframes_raises_job_error():
    with pytest.raises(JobError, match="at least 3 keyframes"):
        SfmEngine().reconstruct(_static_keyframes(2), JobContext())


def test_cancel_before_start():
    ev = threading.Event()
    ev.set()
    with pytest.raises(JobCancelled):
        SfmEngine().reconstruct(_static_keyframes(4), JobContext(cancel_event=ev))


@pytest.mark.parametrize("stage", ["sfm: features", "sfm: mapping"])
def test_cancel_inside_pycolmap_is_prompt(stage):
    from sfm_synthetic import room_orbit

    _, _, imgs, _ = room_orbit(n=8, w=256, h=192, arc_deg=40.0)
    ev = threading.Event()
    started: list[float] = []

    def progress(s: str, done: int, total: int) -> None:
        if s == stage and not started:
            started.append(time.perf_counter())
            threading.Timer(0.2, ev.set).start()

    with pytest.raises(JobCancelled):
        SfmEngine().reconstruct([Keyframe(im, i, 0.0) for i, im in enumerate(imgs)],
                                JobContext(progress_fn=progress, cancel_event=ev))
    assert time.perf_counter() - started[0] < 3.0
