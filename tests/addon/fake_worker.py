"""Test-only stand-in for ``python -m core.worker``: speaks the protocol without any
reconstruction. Started through a wrapper "python" so the real WorkerProcess is used.

Mode from $OV3R_FAKE_MODE: ok | error | sleep | crash. $OV3R_FAKE_DIR: a folder for
the received argv (argv.json), a gate file (``go``) the ok mode waits for after its
partial, and the pid of a grandchild (child.pid) in sleep mode.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from core.scene import Cameras, SemanticScene, save_scene  # PYTHONPATH = the repo (worker_env)


def emit(type_, **data):
    print(json.dumps({"type": type_, **data}), flush=True)


def scene(n, m):
    rng = np.random.default_rng(n)
    T = np.repeat(np.eye(4, dtype=np.float32)[None], m, 0)
    T[:, 0, 3] = np.arange(m)
    K = np.repeat(np.array([[300, 0, 160], [0, 300, 120], [0, 0, 1]], np.float32)[None], m, 0)
    cams = Cameras(K, T, np.arange(m) * 0.5, np.arange(m, dtype=np.int32) * 15, (320, 240))
    return SemanticScene.from_points(
        rng.random((n, 3), dtype=np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8),
        frame_id=np.zeros(n, np.int32), cameras=cams,
        metadata={"engine": "fake", "video": {"fps": 30.0, "frames_read": 40}},
    )


def main():
    argv = sys.argv[1:]
    if argv[:2] == ["-m", "core.worker"]:
        argv = argv[2:]
    mode = os.environ.get("OV3R_FAKE_MODE", "ok")
    work = Path(os.environ["OV3R_FAKE_DIR"])
    (work / "argv.json").write_text(json.dumps(argv), "utf-8")
    out = argv[argv.index("--out") + 1]
    partial_dir = Path(argv[argv.index("--partial-dir") + 1])
    emit("progress", stage="decode + keyframes", done=5, total=10)
    print("library chatter on stderr", file=sys.stderr)
    if mode == "crash":
        sys.exit(7)
    save_scene(scene(100, 2), partial_dir / "partial-0.ov3r.npz")
    emit("partial", path=str(partial_dir / "partial-0.ov3r.npz"), points=100)
    emit("progress", stage="dense", done=1, total=4)
    if mode == "error":
        emit("error", message="the video is too dark")
        sys.exit(2)
    if mode == "sleep":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (work / "child.pid").write_text(str(child.pid))
        time.sleep(120)
        sys.exit(0)
    deadline = time.monotonic() + 30
    while not (work / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    save_scene(scene(300, 3), out)
    emit("progress", stage="save", done=1, total=1)
    emit("done", path=out)


if __name__ == "__main__":
    main()
