"""The real worker process and its JSON-lines protocol (bad input paths; the full run is in
test_end_to_end)."""

import time

import numpy as np
from video_fixtures import pan_frames

from ov3r.core.protocol import decode, encode
from ov3r.core.video.writer import write_video
from ov3r.core.worker_client import WorkerProcess


def run_to_end(args, timeout=120):
    w = WorkerProcess(args)
    events = []
    t0 = time.time()
    for ev in w.events():
        events.append(ev)
        assert time.time() - t0 < timeout
    return w, events


def test_protocol_roundtrip():
    ev = decode(encode("progress", stage="sfm", done=3, total=9))
    assert (ev.type, ev.stage, ev.done, ev.total) == ("progress", "sfm", 3, 9)
    assert decode("some library chatter") is None
    assert decode('{"type": "nonsense"}') is None


def test_not_a_video_gives_one_error_event(tmp_path):
    bad = tmp_path / "holiday notes ☀.mp4"
    bad.write_text("not a video")
    w, events = run_to_end(["reconstruct", str(bad), "--out", str(tmp_path / "o.ov3r.npz")])
    assert [e.type for e in events] == ["error"]
    assert "not a readable video" in events[0].message or "cannot decode" in events[0].message
    assert w.proc.returncode == 2
    assert not (tmp_path / "o.ov3r.npz").exists()


def test_static_camera_gives_error_after_progress(tmp_path):
    still = pan_frames(1, 0.0)[0]
    path = tmp_path / "tripod.mp4"
    write_video(path, [still] * 30)
    w, events = run_to_end(["reconstruct", str(path), "--out", str(tmp_path / "o.ov3r.npz")])
    assert events[-1].type == "error" and "hardly moves" in events[-1].message
    assert any(e.type == "progress" and e.stage.startswith("decode") for e in events)


def test_cancel_kills_the_process_group(tmp_path):
    # A long still video keeps the worker busy decoding; cancel must end it at once.
    frames = [np.full((480, 640, 3), 128, np.uint8)] * 2
    path = tmp_path / "long.mp4"
    write_video(path, frames * 600, fps=30)
    w = WorkerProcess(["reconstruct", str(path), "--out", str(tmp_path / "o.ov3r.npz")])
    deadline = time.time() + 60
    while time.time() < deadline and not any(e.type == "progress" for e in w.poll()):
        time.sleep(0.05)
    t0 = time.time()
    w.cancel()
    events = list(w.events())
    assert time.time() - t0 < 5
    assert w.proc.returncode is not None and w.proc.returncode < 0
    assert events and events[-1].type == "error" and events[-1].data.get("cancelled")
    assert not (tmp_path / "o.ov3r.npz").exists()


def test_events_keep_the_workers_order_when_they_arrive_together():
    """200 events written at once (they queue up before the reader is polled) come out in order."""
    import sys

    script = ("import sys\n"
              f"lines = [{encode('progress', stage='s', done=0, total=1)!r}.replace('\"done\": 0', '\"done\": %d' % i)"
              " for i in range(200)]\n"
              f"sys.stdout.write('\\n'.join(lines) + '\\n' + {encode('error', message='end')!r} + '\\n')\n")
    w = WorkerProcess([], command=[sys.executable, "-c", script])
    time.sleep(0.5)  # let everything queue up
    events = list(w.events())
    assert [e.type for e in events] == ["progress"] * 200 + ["error"]
    assert [e.done for e in events[:-1]] == list(range(200))


def test_worker_threads_sleep_when_idle_unless_the_user_says_otherwise(monkeypatch):
    """Workers run beside Blender: their OpenMP threads must not spin on cores another process needs."""
    from ov3r.core.worker_client import worker_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert worker_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert worker_env()["OMP_WAIT_POLICY"] == "ACTIVE"
