"""One import job per Blender session: a worker process polled from ``bpy.app.timers``.

``start_import(context, video, settings)`` starts ``python -m core.worker reconstruct ...``
(arguments from ``worker_args``: the one place to change them), registers a timer that
calls ``ImportJob.step()`` every 0.1 s, and returns the job. Each step drains the worker's
events: progress -> window-manager properties + progress cursor + redraw; partial -> the
points object grows; done -> the final objects; error / cancel -> everything built so far
is removed and the error is reported.

Timers never fire in background mode (``blender -b`` or the ``bpy`` module: there is no
event loop), so scripts and tests call ``job.wait()``, which runs the same ``step()`` in
a loop (the import operator's hidden ``wait=True`` does this).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import bpy

from ..core.protocol import Event
from ..core.scene import SUFFIX, SceneFormatError, load_scene
from ..core.worker_client import WorkerProcess
from . import scene_builder
from .preferences import WorkerPythonError, resolve_worker_python

POLL_INTERVAL = 0.1

RUNNING, DONE, ERROR, CANCELLED = "RUNNING", "DONE", "ERROR", "CANCELLED"


@dataclass
class ImportSettings:
    engine: str = "sfm"
    max_frames: int = 0  # 0 = the worker's default
    max_side: int = 0  # 0 = the worker's default
    point_size: float = 0.01
    partial_interval: float = 2.0  # seconds between partial scenes from the worker
    align: bool = True  # floor on Z=0, walls along X / Y (core.scene.align)


def worker_args(video_path: str, out_path: str, partial_dir: str, settings: ImportSettings) -> list[str]:
    """Command-line arguments of ``python -m core.worker`` for one import."""
    args = ["reconstruct", video_path, "--out", out_path, "--engine", settings.engine,
            "--partial-dir", partial_dir, "--partial-interval", str(settings.partial_interval)]
    if settings.max_frames > 0:
        args += ["--max-frames", str(settings.max_frames)]
    if settings.max_side > 0:
        args += ["--max-side", str(settings.max_side)]
    return args


WorkerFactory = Callable[[list[str], str | None], WorkerProcess]


def _default_factory(args: list[str], python: str | None) -> WorkerProcess:
    from .preferences import downloads_allowed

    # Model downloads only with consent and Blender's online access (HF_HUB_OFFLINE otherwise).
    env = {"OV3R_ALLOW_DOWNLOAD": "1", "HF_HUB_OFFLINE": "0"} if downloads_allowed() else {"OV3R_ALLOW_DOWNLOAD": "0"}
    return WorkerProcess(args, python=python, env=env)


def default_scene_path(video_path: str) -> str:
    """Next to the saved .blend (``//ov3r/``), else in a fresh temp folder."""
    stem = Path(video_path).stem
    if bpy.data.filepath:
        folder = Path(bpy.path.abspath("//ov3r"))
    else:
        folder = Path(tempfile.mkdtemp(prefix="ov3r-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}{SUFFIX}"
    n = 1
    while path.exists():
        path = folder / f"{stem}-{n}{SUFFIX}"
        n += 1
    return str(path)


class ImportJob:
    """A running (or finished) import; all Blender changes happen in ``step()``."""

    def __init__(self, video_path: str, scene_path: str, settings: ImportSettings, worker: WorkerProcess,
                 partial_dir: str = ""):
        self.video_path = video_path
        self.partial_dir = partial_dir
        self.scene_path = scene_path
        self.settings = settings
        self.worker = worker
        self.state = RUNNING
        self.stage = "starting"
        self.fraction = 0.0
        self.message = ""
        self.built: scene_builder.BuiltScene | None = None
        self.warning = ""  # set when the result covers only part of the video
        self.partials_loaded = 0
        self._progress_open = False

    # -- state ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def step(self) -> bool:
        """Handle the events that arrived; True while the job is still running."""
        if not self.running:
            return False
        events = self.worker.poll()
        last_partial = max((i for i, e in enumerate(events) if e.type == "partial"), default=-1)
        if any(e.type == "done" for e in events):
            last_partial = -1  # the final result supersedes every partial
        for i, event in enumerate(events):
            if event.type == "progress":
                self._on_progress(event)
            elif event.type == "partial" and i == last_partial:  # older partials are superseded
                self._on_partial(event)
            elif event.type == "log":
                print(f"Ov3R worker: {event.message}")
            elif event.type == "done":
                self._on_done(event)
            elif event.type == "error":
                self._fail(event.message, cancelled=bool(event.data.get("cancelled")) or self.worker.cancelled)
            if not self.running:
                break
        self._sync_ui()
        return self.running

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> str:
        """Block until the job ends (background mode has no timers); returns the state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.step():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                self.message = f"timed out after {timeout:.0f} s"
                break
            time.sleep(interval)
        return self.state

    def cancel(self) -> None:
        """Kill the worker's process group and remove everything built so far."""
        if not self.running:
            return
        self.worker.cancel()
        self._fail("cancelled", cancelled=True)
        self._sync_ui()

    # -- events --------------------------------------------------------------------------
    def _on_progress(self, event: Event) -> None:
        self.stage = event.stage or self.stage
        total = max(event.total, 0)
        self.fraction = min(1.0, event.done / total) if total else 0.0
        self.message = f"{self.stage} {event.done}/{total}" if total else self.stage

    def _aligned(self, scene):
        if not self.settings.align:
            return scene
        from ..core.scene.align import auto_align

        scene, why = auto_align(scene)
        if why:
            print(f"Ov3R: not aligned ({why})")
        return scene

    def _on_partial(self, event: Event) -> None:
        try:
            scene = self._aligned(load_scene(event.path))
        except SceneFormatError as exc:  # a partial is only a preview: skip a bad one
            print(f"Ov3R: skipped partial result: {exc}")
            return
        self.built = scene_builder.build_scene(
            scene, video_path=self.video_path, scene_path=self.scene_path,
            point_size=self.settings.point_size, built=self.built, final=False,
        )
        self.partials_loaded += 1

    def _on_done(self, event: Event) -> None:
        path = event.path or self.scene_path
        try:
            scene = self._aligned(load_scene(path))
            self.built = scene_builder.build_scene(
                scene, video_path=self.video_path, scene_path=path,
                point_size=self.settings.point_size, built=self.built, final=True,
            )
        except Exception as exc:  # noqa: BLE001 - anything here must not leave half a result
            self._fail(f"could not build the result: {exc}")
            return
        scene_builder.make_active(self.built.points_object())
        self.scene_path = path
        self.state = DONE
        self._remove_partials()
        self.stage, self.fraction = "done", 1.0
        self.message = f"{len(scene)} points, {len(scene.cameras)} keyframes"
        coverage = scene.metadata.get("coverage") or {}
        if coverage:
            self.message += f", {100 * float(coverage.get('fraction', 0)):.0f}% of the video placed"
        self.warning = str(coverage.get("warning") or "")
        if self.warning:
            print(f"Ov3R import warning: {self.warning}")
            _popup(self.warning, "Ov3R: part of the video could not be placed")

    def _fail(self, message: str, cancelled: bool = False) -> None:
        scene_builder.remove_built(self.built)
        self.built = None
        if self.worker.is_running():
            self.worker.cancel()
        self._remove_partials()
        self.state = CANCELLED if cancelled else ERROR
        self.message = "cancelled" if cancelled else (message or "the worker failed")
        if not cancelled:
            print(f"Ov3R import failed: {self.message}")
            _report_error(self.message)

    def _remove_partials(self) -> None:
        if self.partial_dir and os.path.isdir(self.partial_dir):
            shutil.rmtree(self.partial_dir, ignore_errors=True)

    # -- UI ------------------------------------------------------------------------------
    def _sync_ui(self) -> None:
        wm = bpy.context.window_manager
        if wm is None:
            return
        props = getattr(wm, "ov3r_job", None)
        if props is not None:
            props.running = self.running
            props.stage = self.stage
            props.progress = self.fraction
            props.message = self.message
            props.video = self.video_path
            if self.state == ERROR:
                props.error = self.message
            elif self.state == DONE:
                props.error = ""
                props.warning = self.warning
            if self.running:
                props.warning = ""
        if self.running and not self._progress_open:
            wm.progress_begin(0.0, 1.0)
            self._progress_open = True
        if self._progress_open:
            if self.running:
                wm.progress_update(self.fraction)
            else:
                wm.progress_end()
                self._progress_open = False
        _redraw()


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        screen = window.screen
        for area in screen.areas if screen else []:
            if area.type in {"VIEW_3D", "PROPERTIES", "STATUSBAR"}:
                area.tag_redraw()


def _report_error(message: str) -> None:
    _popup(message, "Ov3R import failed")


def _popup(message: str, title: str) -> None:
    """Tell the user in the UI (a popup): a timer-driven job has no operator left to report through;
    in background mode the print is enough."""
    if bpy.app.background:
        return
    wm = bpy.context.window_manager

    def draw(menu: bpy.types.Menu, _context: bpy.types.Context) -> None:
        for line in _wrap(message, 90):
            menu.layout.label(text=line)

    try:
        if bpy.context.window is None and wm.windows:  # in a timer: give the popup a window
            with bpy.context.temp_override(window=wm.windows[0]):
                wm.popup_menu(draw, title=title, icon="ERROR")
        else:
            wm.popup_menu(draw, title=title, icon="ERROR")
    except (RuntimeError, AttributeError, TypeError):
        pass


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return lines + ([line] if line else [])


# -- the one job of this session ------------------------------------------------------------
_job: ImportJob | None = None


def active_job() -> ImportJob | None:
    return _job


def is_running() -> bool:
    return _job is not None and _job.running


def start_import(
    context: bpy.types.Context,
    video_path: str,
    settings: ImportSettings,
    *,
    python: str | None = None,
    scene_path: str | None = None,
    worker_factory: WorkerFactory | None = None,
    use_timer: bool = True,
) -> ImportJob:
    """Start importing ``video_path``. ``python`` None = the preferences' worker Python
    (checked; WorkerPythonError if unusable). With ``use_timer`` the job advances from a
    ``bpy.app.timers`` callback; otherwise the caller calls ``job.wait()``."""
    global _job
    if is_running():
        raise RuntimeError("an Ov3R import is already running; cancel it first")
    if python is None:
        python = resolve_worker_python(context)
    video_path = os.path.abspath(video_path)
    scene_path = scene_path or default_scene_path(video_path)
    partial_dir = tempfile.mkdtemp(prefix="ov3r-partial-")
    args = worker_args(video_path, scene_path, partial_dir, settings)
    try:
        worker = (worker_factory or _default_factory)(args, python)
    except OSError as exc:
        shutil.rmtree(partial_dir, ignore_errors=True)
        raise WorkerPythonError(f"cannot start the worker with {python!r}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(partial_dir, ignore_errors=True)
        raise
    _job = ImportJob(video_path, scene_path, settings, worker, partial_dir)
    _job._sync_ui()
    if use_timer and not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=POLL_INTERVAL)
    return _job


def cancel_active() -> bool:
    if not is_running():
        return False
    _job.cancel()
    return True


def _timer() -> float | None:
    job = _job
    if job is None:
        return None
    try:
        running = job.step()
    except Exception as exc:  # noqa: BLE001 - a timer must never die silently mid-job
        job._fail(f"internal error: {exc.__class__.__name__}: {exc}")
        job._sync_ui()
        running = False
    return POLL_INTERVAL if running else None


@bpy.app.handlers.persistent
def _on_load_pre(*_args) -> None:
    """Opening another file: the job's objects would vanish; stop it cleanly."""
    cancel_active()


def register() -> None:
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    cancel_active()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
