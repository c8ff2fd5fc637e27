"""The job runner against a fake worker (tests/addon/fake_worker.py) started through the
real WorkerProcess: progress, partial results growing the object, the final build, errors
leaving nothing behind, cancel killing the whole process group, and the operators."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from conftest import bpy

from ov3r.ov3r_addon import blend_storage, job_runner

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def addon(registered_addon):
    yield registered_addon
    job_runner.cancel_active()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A "python" that runs the fake worker; returns (python path, work dir, video path)."""
    work = tmp_path / "work"
    work.mkdir()
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_worker.py"}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    video = tmp_path / "ma vidéo du salon.mp4"  # spaces and non-ASCII on purpose
    video.write_bytes(b"not really a video")
    monkeypatch.setenv("OV3R_FAKE_DIR", str(work))
    return str(python), work, str(video)


def _start(fake, mode, monkeypatch, tmp_path, **settings):
    python, work, video = fake
    monkeypatch.setenv("OV3R_FAKE_MODE", mode)
    return job_runner.start_import(
        bpy.context, video, job_runner.ImportSettings(**settings), python=python,
        scene_path=str(tmp_path / "out" / "result.ov3r.npz"), use_timer=False,
    )


def _step_until(job, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out; state={job.state} message={job.message}"
        job.step()
        time.sleep(0.02)


def _nothing_left():
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0
    assert len(bpy.data.cameras) == 0 and len(bpy.data.collections) == 0 and len(bpy.data.movieclips) == 0


def _pid_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        status = Path(f"/proc/{pid}/status")
        if status.exists() and "\nState:\tZ" in status.read_text():
            return True  # a zombie: dead, waiting for its (new) parent to reap it
        time.sleep(0.05)
    return False


def test_worker_args():
    args = job_runner.worker_args("/v/a b.mp4", "/o/s.ov3r.npz", "/p",
                                  job_runner.ImportSettings(engine="sfm", max_frames=50, max_side=512))
    assert args[:4] == ["reconstruct", "/v/a b.mp4", "--out", "/o/s.ov3r.npz"]
    assert args[args.index("--max-frames") + 1] == "50" and args[args.index("--max-side") + 1] == "512"
    assert args[args.index("--partial-dir") + 1] == "/p" and args[args.index("--engine") + 1] == "sfm"
    assert "--max-frames" not in job_runner.worker_args("v", "o", "p", job_runner.ImportSettings())


def test_progress_partial_then_done(fake, monkeypatch, tmp_path):
    job = _start(fake, "ok", monkeypatch, tmp_path, max_frames=7, point_size=0.03)
    wm = bpy.context.window_manager
    assert wm.ov3r_job.running and job_runner.is_running()
    assert not bpy.ops.ov3r.import_video.poll() and bpy.ops.ov3r.cancel_job.poll()

    # the worker emits the partial, then the "dense" progress line: a poll may return the first alone
    _step_until(job, lambda: job.partials_loaded == 1 and wm.ov3r_job.stage == "dense")
    assert job.running
    assert wm.ov3r_job.stage == "dense" and wm.ov3r_job.progress == pytest.approx(0.25)
    assert "dense" in wm.ov3r_job.message
    obj = bpy.data.objects[job.built.points]
    assert len(obj.data.vertices) == 100 and blend_storage.info(obj)["partial"] is True
    argv = json.loads((fake[1] / "argv.json").read_text("utf-8"))
    assert argv[1] == fake[2] and argv[argv.index("--max-frames") + 1] == "7"

    (fake[1] / "go").touch()
    assert job.wait(timeout=30) == job_runner.DONE
    obj = bpy.data.objects[job.built.points]
    assert len(obj.data.vertices) == 300 and blend_storage.info(obj)["partial"] is False
    assert blend_storage.info(obj)["keyframes"] == 3 and len(bpy.data.meshes) == 1
    assert bpy.data.objects[job.built.camera].animation_data.action is not None
    assert bpy.context.view_layer.objects.active == obj
    assert job.built.collection == "Ov3R ma vidéo du salon"
    assert not wm.ov3r_job.running and wm.ov3r_job.progress == 1.0 and wm.ov3r_job.error == ""
    assert not os.path.exists(job.partial_dir)
    assert not job_runner.is_running() and bpy.ops.ov3r.import_video.poll()


def test_error_leaves_nothing(fake, monkeypatch, tmp_path):
    job = _start(fake, "error", monkeypatch, tmp_path)
    assert job.wait(timeout=30) == job_runner.ERROR
    assert job.partials_loaded == 1  # something was built, then removed
    assert job.message == "the video is too dark"
    assert bpy.context.window_manager.ov3r_job.error == "the video is too dark"
    _nothing_left()


def test_crash_without_verdict_is_an_error(fake, monkeypatch, tmp_path):
    job = _start(fake, "crash", monkeypatch, tmp_path)
    assert job.wait(timeout=30) == job_runner.ERROR
    assert "exited with code 7" in job.message and "library chatter" in job.message
    _nothing_left()


def test_cancel_kills_process_group_and_leaves_nothing(fake, monkeypatch, tmp_path):
    job = _start(fake, "sleep", monkeypatch, tmp_path)
    _step_until(job, lambda: job.partials_loaded == 1 and (fake[1] / "child.pid").exists())
    assert len(bpy.data.objects) == 2
    child = int((fake[1] / "child.pid").read_text())
    assert bpy.ops.ov3r.cancel_job() == {"FINISHED"}
    assert job.state == job_runner.CANCELLED and not job.worker.is_running()
    assert _pid_gone(job.worker.proc.pid) and _pid_gone(child), "the worker's process group must be gone"
    _nothing_left()
    assert not bpy.context.window_manager.ov3r_job.running
    assert not bpy.ops.ov3r.cancel_job.poll()


def test_operator_wait_in_background(fake, monkeypatch):
    python, work, video = fake
    monkeypatch.setenv("OV3R_FAKE_MODE", "ok")
    (work / "go").touch()
    res = bpy.ops.ov3r.import_video(filepath=video, max_frames=9, wait=True, worker_python=python)
    assert res == {"FINISHED"}
    job = job_runner.active_job()
    assert job.state == job_runner.DONE and len(bpy.data.objects[job.built.points].data.vertices) == 300
    assert job.scene_path.endswith("ma vidéo du salon.ov3r.npz") and os.path.isfile(job.scene_path)


def test_operator_errors_are_reported(fake, monkeypatch, tmp_path):
    python, _work, _video = fake
    with pytest.raises(RuntimeError, match="Video not found"):
        bpy.ops.ov3r.import_video(filepath=str(tmp_path / "missing.mp4"), wait=True, worker_python=python)
    monkeypatch.setenv("OV3R_FAKE_MODE", "error")
    with pytest.raises(RuntimeError, match="too dark"):
        bpy.ops.ov3r.import_video(filepath=fake[2], wait=True, worker_python=python)
    _nothing_left()
    with pytest.raises(RuntimeError, match="cannot start the worker"):
        bpy.ops.ov3r.import_video(filepath=fake[2], wait=True, worker_python=str(tmp_path / "no-python"))


def test_unusable_worker_python_is_a_clear_error(tmp_path):
    from ov3r.ov3r_addon import preferences

    bad = tmp_path / "bad python"
    bad.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named pycolmap' >&2\nexit 1\n")
    bad.chmod(0o755)
    assert "pycolmap" in preferences.check_python(str(bad))
    worker = os.environ.get(preferences.WORKER_PYTHON_ENV) or sys.executable
    assert preferences.check_python(worker) == ""  # the project's venv has the engine's dependencies


def test_import_scene_operator(tmp_path):
    from conftest import make_scene

    from ov3r.core.scene import save_scene

    path = save_scene(make_scene(n=64, m=2), tmp_path / "salle à manger.ov3r.npz")
    assert bpy.ops.ov3r.import_scene(filepath=str(path)) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert len(obj.data.vertices) == 64 and blend_storage.info(obj)["scene_path"] == str(path)
    (tmp_path / "broken.ov3r.npz").write_bytes(b"nope")
    with pytest.raises(RuntimeError, match="not an Ov3R scene"):
        bpy.ops.ov3r.import_scene(filepath=str(tmp_path / "broken.ov3r.npz"))


def test_timers_do_not_run_in_background_mode():
    """Why ``wait=True`` exists: the bpy module has no event loop, so timers never fire."""
    calls = []
    bpy.app.timers.register(lambda: calls.append(1), first_interval=0.01)
    time.sleep(0.2)
    assert calls == []


def test_timer_callback_drives_the_job(fake, monkeypatch, tmp_path):
    """What Blender's event loop does in the UI: call the registered timer until it stops."""
    python, work, video = fake
    monkeypatch.setenv("OV3R_FAKE_MODE", "ok")
    (work / "go").touch()
    job = job_runner.start_import(bpy.context, video, job_runner.ImportSettings(), python=python,
                                  scene_path=str(tmp_path / "t.ov3r.npz"))
    assert bpy.app.timers.is_registered(job_runner._timer)
    deadline = time.monotonic() + 30
    while (interval := job_runner._timer()) is not None:
        assert interval == job_runner.POLL_INTERVAL and time.monotonic() < deadline
        time.sleep(0.02)
    bpy.app.timers.unregister(job_runner._timer)
    assert job.state == job_runner.DONE


def test_real_worker_error_reaches_the_user(tmp_path):
    """The real ``python -m core.worker`` with the automatic worker Python ($OV3R_WORKER_PYTHON,
    else this venv)."""
    bad = tmp_path / "vidéo cassée.mp4"
    bad.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="not a readable video"):
        bpy.ops.ov3r.import_video(filepath=str(bad), wait=True)
    _nothing_left()


class _Recorder:
    """Stands in for UILayout: accepts any call, records it, returns itself."""

    def __init__(self, calls):
        self.calls = calls

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self

        return call


def test_panels_draw(fake, monkeypatch, tmp_path):
    from ov3r.panels import import_menu, sidebar

    def draw(panel_cls):
        calls = []
        panel = type("P", (), {"layout": _Recorder(calls)})()
        panel_cls.draw(panel, bpy.context)
        return calls

    idle = draw(sidebar.VIEW3D_PT_ov3r_import)
    assert ("operator", ("ov3r.import_video",), {"text": "Import Video...", "icon": "FILE_MOVIE"}) in idle
    job = _start(fake, "sleep", monkeypatch, tmp_path)
    _step_until(job, lambda: job.partials_loaded == 1)
    running = draw(sidebar.VIEW3D_PT_ov3r_import)
    progress = [c for c in running if c[0] == "progress"]
    assert progress and progress[0][2]["factor"] == pytest.approx(0.25)
    assert any(c[0] == "operator" and c[1] == ("ov3r.cancel_job",) for c in running)
    bpy.context.view_layer.objects.active = bpy.data.objects[job.built.points]
    assert sidebar.VIEW3D_PT_ov3r_object.poll(bpy.context)
    info = draw(sidebar.VIEW3D_PT_ov3r_object)
    assert any(c[0] == "label" and c[2].get("text") == "Points: 100" for c in info)
    size_props = [c for c in info if c[0] == "prop" and c[2].get("text") == "Point Size"]
    assert size_props and size_props[0][1][0].path_resolve(size_props[0][1][1]) == pytest.approx(0.01)
    job.cancel()
    menu_calls = []
    import_menu.draw_import_entries(type("M", (), {"layout": _Recorder(menu_calls)})(), bpy.context)
    assert [c[1][0] for c in menu_calls] == ["ov3r.import_video", "ov3r.import_scene"]
