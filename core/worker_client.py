"""Start ``python -m core.worker`` in its own process group and read its events.

Used by the CLI (blocking loop) and by the Blender add-on (polled from a
``bpy.app.timers`` callback, so the UI never waits on the worker).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Sequence

from .protocol import Event, decode

CORE_DIR = Path(__file__).resolve().parent
# The worker imports ``core`` as a top-level package from the folder that holds it.
PACKAGE_ROOT = CORE_DIR.parent


def worker_command(python: str | None, args: Sequence[str]) -> list[str]:
    return [python or sys.executable, "-m", f"{CORE_DIR.name}.worker", *args]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Blender sets PYTHONHOME/PYTHONPATH for its own interpreter; never leak them.
    env.pop("PYTHONHOME", None)
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.setdefault("HF_HUB_OFFLINE", "1")
    # OpenMP threads that sleep when idle rather than spin: beside another busy process (Blender rendering,
    # a second job) spinning threads made torch stages 3x slower; alone it costs nothing measurable
    # (docs/experiments/history.md, "OpenMP threads beside other work").
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if extra:
        env.update(extra)
    return env


_NOTHING = object()  # "no item": None is the end-of-stream marker

class WorkerProcess:
    """A running worker. ``poll()`` never blocks; ``events()`` blocks until the end."""

    def __init__(
        self,
        args: Sequence[str],
        python: str | None = None,
        env: dict[str, str] | None = None,
        command: Sequence[str] | None = None,
    ):
        """``command`` replaces ``python -m core.worker`` (e.g. the headless Blender builder)."""
        self.args = list(args)
        fd, log = tempfile.mkstemp(prefix="ov3r-worker-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        self._log = open(self.log_path, "wb")
        kwargs: dict = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:  # pragma: no cover - Windows
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        self.proc = subprocess.Popen(
            list(command) + self.args if command else worker_command(python, args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=str(PACKAGE_ROOT),
            env=worker_env(env),
            **kwargs,
        )
        self._queue: "queue.Queue[Event | None]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.finished = False
        self.cancelled = False
        self.saw_terminal_event = False

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            event = decode(raw.decode("utf-8", errors="replace"))
            if event is not None:
                self._queue.put(event)
        self.proc.wait()
        self._queue.put(None)

    def poll(self, first=_NOTHING) -> list[Event]:
        """Events that arrived since the last call, in the worker's order. After the process
        ended and its last event was returned, a synthetic ``error`` is added if it died
        without a verdict. ``first``: an item already taken from the queue (by events())."""
        out: list[Event] = []
        while True:
            if first is not _NOTHING:
                item, first = first, _NOTHING
            else:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if item is None:
                self._finish(out)
                break
            if item.type in ("done", "error"):
                self.saw_terminal_event = True
            out.append(item)
        return out

    def _finish(self, out: list[Event]) -> None:
        self.finished = True
        self._log.close()
        if self.saw_terminal_event:
            return
        if self.cancelled:
            out.append(Event("error", {"message": "cancelled", "cancelled": True}))
            return
        tail = self.stderr_tail()
        out.append(
            Event(
                "error",
                {"message": f"worker exited with code {self.proc.returncode} without a result. {tail}".strip()},
            )
        )

    def events(self, timeout: float = 0.1) -> Iterator[Event]:
        while not self.finished:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            # poll() does the bookkeeping; the item goes first (putting it back would queue it
            # behind events that arrived meanwhile and scramble their order).
            yield from self.poll(first=item)

    def stderr_tail(self, n: int = 800) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return text[-n:].strip()

    def cancel(self, grace: float = 3.0) -> None:
        """Terminate the whole process group (the worker and anything it started)."""
        if self.proc.poll() is not None:
            return
        self.cancelled = True
        try:
            if os.name == "posix":
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:  # pragma: no cover
                self.proc.send_signal(signal.CTRL_BREAK_EVENT)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            if os.name == "posix":
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:  # pragma: no cover
                self.proc.kill()
            self.proc.wait()
        except ProcessLookupError:
            pass

    def is_running(self) -> bool:
        return self.proc.poll() is None
