"""The add-on's side of the long-lived query worker (``python -m core.query_worker``).

``QueryWorker``: one process, started lazily, restarted when it died; ``submit()`` and
``poll()`` never block (a ``bpy.app.timers`` callback polls), ``request()`` waits (scripts,
tests, background mode, where timers never fire). Embeddings are cached per text, so a
saved query or a repeated vocabulary costs nothing.

``get_worker()`` returns the session's worker configured from the preferences;
``set_encoder_override(enc)`` makes every request use an in-process stand-in (tests).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.worker_client import CORE_DIR, PACKAGE_ROOT, worker_env

READY_TIMEOUT = 180.0


class QueryError(RuntimeError):
    """A query could not be answered; the message is for the user."""


@dataclass(frozen=True)
class WorkerConfig:
    python: str = ""
    encoder: str = ""  # module:factory; "" = the worker's default (the offline text encoder)
    weights: str = ""
    device: str = "cpu"
    allow_download: bool = False  # preferences + Blender's online access; else HF_HUB_OFFLINE=1

    def env(self) -> dict[str, str]:
        if self.allow_download:
            return {"OV3R_ALLOW_DOWNLOAD": "1", "HF_HUB_OFFLINE": "0"}
        return {"OV3R_ALLOW_DOWNLOAD": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def command(self) -> list[str]:
        cmd = [self.python or sys.executable, "-m", f"{CORE_DIR.name}.query_worker", "--device", self.device]
        if self.encoder:
            cmd += ["--encoder", self.encoder]
        if self.weights:
            cmd += ["--weights", self.weights]
        return cmd


@dataclass
class _Pending:
    texts: list[str]
    prompt: bool
    sent: float = field(default_factory=time.monotonic)


class QueryWorker:
    def __init__(self, config: WorkerConfig):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.ready = False
        self.model = ""
        self.dim = 0
        self.fatal = ""
        self.log_path = ""
        self._answers: queue.Queue[dict | None] = queue.Queue()
        self._pending: dict[int, _Pending] = {}
        self._results: dict[int, dict] = {}
        self._cache: dict[tuple[str, bool], np.ndarray] = {}
        self._next_id = 1
        self.restarts = 0

    # -- process -------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_started(self) -> None:
        """Start the process when there is none or it died (answers in flight are failed)."""
        if self.alive():
            return
        if self.proc is not None:
            self.restarts += 1
            self._fail_pending("the query worker stopped; it was restarted")
        if self.config.weights and not os.path.isdir(self.config.weights):
            raise QueryError(f"Weights folder not found: {self.config.weights} (Preferences > Add-ons > Ov3R)")
        fd, self.log_path = tempfile.mkstemp(prefix="ov3r-query-", suffix=".log")
        log = os.fdopen(fd, "wb")
        self.ready, self.fatal = False, ""
        self._answers = queue.Queue()
        try:
            self.proc = subprocess.Popen(
                self.config.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                cwd=str(PACKAGE_ROOT), env=worker_env(self.config.env()), start_new_session=(os.name == "posix"),
            )
        except OSError as exc:
            self.proc = None
            raise QueryError(f"Cannot start the query worker with {self.config.command()[0]!r}: {exc}") from exc
        finally:
            log.close()
        threading.Thread(target=self._read, args=(self.proc, self._answers), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen, out: queue.Queue[dict | None]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                obj = json.loads(raw.decode("utf-8", errors="replace"))
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.put(obj)
        out.put(None)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        # EOF: a live worker ends on its own; a dead one's unsent request is dropped here (left to the
        # interpreter's exit, its flush raised BrokenPipeError there)
        try:
            proc.stdin.close()
        except OSError:
            pass
        if proc.poll() is not None:
            return
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGTERM) if os.name == "posix" else proc.terminate()
                proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()

    def stderr_tail(self, n: int = 600) -> str:
        try:
            return Path(self.log_path).read_text("utf-8", errors="replace")[-n:].strip()
        except OSError:
            return ""

    # -- requests ------------------------------------------------------------------------
    def cached(self, texts: list[str], prompt: bool) -> np.ndarray | None:
        rows = [self._cache.get((t, prompt)) for t in texts]
        return None if any(r is None for r in rows) else np.stack(rows) if rows else None

    def submit(self, texts: list[str], prompt: bool = False) -> int:
        """Send a request; returns its id (answers come from ``poll``)."""
        texts = [str(t) for t in texts]
        if not texts or any(not t.strip() for t in texts):
            raise QueryError("Empty query: type what to look for")
        self.ensure_started()
        rid = self._next_id
        self._next_id += 1
        self._pending[rid] = _Pending(texts, prompt)
        try:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write((json.dumps({"id": rid, "texts": texts, "prompt": prompt}) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self._pending.pop(rid, None)
            why = self._exit_reason()
            raise QueryError(f"Query failed: {why}" if why else
                             f"The query worker is not reachable ({exc}); try again to restart it") from exc
        return rid

    def poll(self) -> dict[int, dict]:
        """Answers that arrived: ``{id: {"embeddings": (T,D) array} or {"error": str}}``."""
        while True:
            try:
                item = self._answers.get_nowait()
            except queue.Empty:
                break
            if item is None:  # the process ended
                why = self.fatal or f"the query worker exited. {self.stderr_tail()}".strip()
                self._fail_pending(why)
                break
            if item.get("ready"):
                self.ready, self.model, self.dim = True, str(item.get("model", "")), int(item.get("dim", 0))
            elif item.get("fatal"):
                self.fatal = (f"{item.get('error', 'the query worker failed')} (with {self.config.command()[0]}; "
                              "see Preferences > Add-ons > Ov3R: Worker Python, Install Dependencies)")
            elif item.get("id") in self._pending:
                rid = int(item["id"])
                req = self._pending.pop(rid)
                if "error" in item:
                    self._results[rid] = {"error": str(item["error"])}
                else:
                    emb = np.asarray(item.get("embeddings", []), np.float32)
                    for t, e in zip(req.texts, emb):
                        self._cache[(t, req.prompt)] = e
                    self._results[rid] = {"embeddings": emb}
        out, self._results = self._results, {}
        return out

    def _exit_reason(self, timeout: float = 5.0) -> str:
        """The worker ended (e.g. a broken pipe): its fatal message, read to the end of its output."""
        try:
            if self.proc is not None:
                self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return ""
        deadline = time.monotonic() + timeout
        while not self.fatal and time.monotonic() < deadline:
            try:
                item = self._answers.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                break
            if item.get("fatal"):
                self._answers.put(item)
                self.poll()
        return self.fatal

    def _fail_pending(self, message: str) -> None:
        for rid in list(self._pending):
            self._results[rid] = {"error": message}
        self._pending.clear()

    def request(self, texts: list[str], prompt: bool = False, timeout: float = READY_TIMEOUT) -> np.ndarray:
        """Blocking: (T,D) embeddings, or QueryError."""
        hit = self.cached([str(t) for t in texts], prompt)
        if hit is not None:
            return hit
        rid = self.submit(texts, prompt)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers = self.poll()
            if rid in answers:
                ans = answers[rid]
                if "error" in ans:
                    raise QueryError(f"Query failed: {ans['error']}")
                return ans["embeddings"]
            time.sleep(0.005)
        raise QueryError(f"The query worker did not answer within {timeout:.0f} s")


class InProcessEncoder:
    """Same interface as QueryWorker around an in-process encoder (tests, stand-ins)."""

    def __init__(self, encoder: Any):
        self.encoder = encoder
        self.ready = True
        self._results: dict[int, dict] = {}
        self._next_id = 1

    def alive(self) -> bool:
        return True

    def submit(self, texts: list[str], prompt: bool = False) -> int:
        if not texts or any(not str(t).strip() for t in texts):
            raise QueryError("Empty query: type what to look for")
        rid = self._next_id
        self._next_id += 1
        self._results[rid] = {"embeddings": self.request(texts, prompt)}
        return rid

    def poll(self) -> dict[int, dict]:
        out, self._results = self._results, {}
        return out

    def request(self, texts: list[str], prompt: bool = False, timeout: float = 0.0) -> np.ndarray:
        if not texts or any(not str(t).strip() for t in texts):
            raise QueryError("Empty query: type what to look for")
        if prompt:
            from ..core.semantics.text_encoder import prompt as make_prompt

            texts = [make_prompt(t) for t in texts]
        emb = np.asarray(self.encoder.encode(list(texts)), np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def stop(self) -> None:
        pass


_worker: QueryWorker | None = None
_override: InProcessEncoder | None = None
ConfigFactory = Callable[[], WorkerConfig]


def set_encoder_override(encoder: Any | None) -> None:
    """Answer every query in this process with ``encoder`` (None = back to the worker)."""
    global _override
    _override = InProcessEncoder(encoder) if encoder is not None else None


def get_worker(config: WorkerConfig) -> QueryWorker | InProcessEncoder:
    """The session's worker for ``config`` (a changed config restarts it)."""
    global _worker
    if _override is not None:
        return _override
    if _worker is not None and _worker.config != config:
        _worker.stop()
        _worker = None
    if _worker is None:
        _worker = QueryWorker(config)
    return _worker


def current_worker() -> QueryWorker | None:
    return _worker


def shutdown() -> None:
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None
