"""Text embeddings for the operators: from the warm query worker (configured by the
preferences) without freezing Blender.

``embed(context, texts, on_done, wait)``: with a cache hit, a ready worker (a round trip
well under a second) or ``wait=True`` (scripts, tests, background mode: no timers there)
``on_done(embeddings)`` runs before it returns ("DONE"); while the worker is still starting
(loading the model takes seconds) the request is sent and a ``bpy.app.timers`` callback
calls ``on_done`` when the answer arrives ("PENDING"); ``on_error(message)`` on failure.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import bpy
import numpy as np

from . import preferences, query_client
from .query_client import QueryError, WorkerConfig

POLL_INTERVAL = 0.05
WAIT_TIMEOUT = 180.0

_callbacks: dict[int, tuple[Callable[[np.ndarray], None], Callable[[str], None]]] = {}


def worker_config(context: bpy.types.Context | None = None) -> WorkerConfig:
    python = preferences.configured_worker_python(context)
    if not python:
        python = sys.executable if not preferences.managed_python() else preferences.managed_python()
    return WorkerConfig(python=python, weights=preferences.weights_dir(context), device=preferences.device(context),
                        allow_download=preferences.downloads_allowed(context))


def get_worker(context: bpy.types.Context | None = None):
    return query_client.get_worker(worker_config(context))


def embed(context: bpy.types.Context | None, texts: list[str], on_done: Callable[[np.ndarray], None],
          on_error: Callable[[str], None], wait: bool = False) -> str:
    """Raises QueryError for what is wrong before anything is sent (empty text, no weights...)."""
    worker = get_worker(context)
    cached = getattr(worker, "cached", None)
    hit = cached(texts, True) if cached is not None else None
    if hit is not None or wait or bpy.app.background or (worker.ready and worker.alive()):
        on_done(hit if hit is not None else worker.request(texts, prompt=True, timeout=WAIT_TIMEOUT))
        return "DONE"
    rid = worker.submit(texts, prompt=True)
    _callbacks[rid] = (on_done, on_error)
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=POLL_INTERVAL)
    return "PENDING"


def _timer() -> float | None:
    worker = query_client.current_worker()
    if worker is None:
        for _done, err in _callbacks.values():
            err("the query worker was stopped")
        _callbacks.clear()
        return None
    for rid, answer in worker.poll().items():
        done, err = _callbacks.pop(rid, (None, None))
        if done is None:
            continue
        try:
            if "error" in answer:
                err(answer["error"])
            else:
                done(answer["embeddings"])
        except Exception as exc:  # noqa: BLE001 - a timer must never die silently
            err(f"{exc.__class__.__name__}: {exc}")
    return POLL_INTERVAL if _callbacks else None


def pending() -> int:
    return len(_callbacks)


@contextlib.contextmanager
def object_mode(obj: bpy.types.Object) -> Iterator[None]:
    """Mesh data can only be written in object mode: leave edit mode around the block."""
    was_edit = obj.mode == "EDIT"
    if was_edit:
        bpy.ops.object.mode_set(mode="OBJECT")
    try:
        yield
    finally:
        if was_edit:
            bpy.ops.object.mode_set(mode="EDIT")


def report_async_error(message: str, title: str = "Ov3R query failed") -> None:
    """An answer that arrived in a timer failed: print it and show a popup (not in background)."""
    print(f"{title}: {message}")
    if bpy.app.background:
        return
    wm = bpy.context.window_manager

    def draw(menu: bpy.types.Menu, _context: bpy.types.Context) -> None:
        menu.layout.label(text=message[:200])

    try:
        with bpy.context.temp_override(window=wm.windows[0]):
            wm.popup_menu(draw, title=title, icon="ERROR")
    except (RuntimeError, AttributeError, TypeError, IndexError):
        pass


__all__ = ["QueryError", "embed", "get_worker", "object_mode", "pending", "worker_config"]
