"""Add-on preferences: which Python runs the worker, and the default point size.

"Automatic" (empty path) means Blender's own interpreter (``sys.executable``) when it
can import the engine's dependencies; otherwise the user is told to pick one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import bpy
from bpy.props import FloatProperty, StringProperty

# The add-on's package (``bl_ext.<repo>.ov3r`` in Blender): preferences are keyed by it.
ADDON_PACKAGE = __package__.rpartition(".")[0]
REQUIRED_MODULES = ("numpy", "av", "pycolmap")

_dep_check_cache: dict[str, str] = {}  # python path -> "" (ok) or the error text


class WorkerPythonError(RuntimeError):
    """No usable Python for the worker; the message says what to do."""


class OV3R_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    worker_python: StringProperty(
        name="Worker Python",
        description="Python interpreter that runs the reconstruction worker (empty = automatic: Blender's own, "
        "if it has numpy, av and pycolmap)",
        subtype="FILE_PATH",
        default="",
    )
    point_size: FloatProperty(name="Default Point Size", default=0.01, min=0.0, soft_max=0.1, subtype="DISTANCE")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        python = self.worker_python or sys.executable
        problem = _dep_check_cache.get(python)
        if problem:
            layout.label(text=f"Not usable: {problem.splitlines()[-1][:120]}", icon="ERROR")
        elif problem == "":
            layout.label(text=f"Worker Python OK: {python}", icon="CHECKMARK")
        layout.prop(self, "point_size")


def get_preferences(context: bpy.types.Context | None = None) -> OV3R_AddonPreferences | None:
    """The preferences, or None when the add-on was registered without addon_utils (tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def check_python(python: str, timeout: float = 60.0) -> str:
    """"" when ``python`` can import the worker's dependencies, else the error (cached)."""
    if python in _dep_check_cache:
        return _dep_check_cache[python]
    if not os.path.isfile(python):
        problem = f"{python!r} does not exist"
    else:
        code = "import " + ", ".join(REQUIRED_MODULES)
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)
        env.pop("PYTHONPATH", None)
        try:
            res = subprocess.run(
                [python, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
                stdin=subprocess.DEVNULL,
            )
            problem = "" if res.returncode == 0 else (res.stderr.strip() or f"exit code {res.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
    _dep_check_cache[python] = problem
    return problem


def resolve_worker_python(context: bpy.types.Context | None = None) -> str:
    """The interpreter to start the worker with, or WorkerPythonError with a clear message."""
    prefs = get_preferences(context)
    chosen = bpy.path.abspath(prefs.worker_python) if prefs is not None and prefs.worker_python else ""
    python = chosen or sys.executable
    problem = check_python(python)
    if problem:
        last = problem.strip().splitlines()[-1] if problem.strip() else problem
        where = "The Python set in the preferences" if chosen else f"Blender's Python ({python})"
        raise WorkerPythonError(
            f"{where} cannot run the Ov3R worker ({last}). In Edit > Preferences > Add-ons > Ov3R, set "
            f"'Worker Python' to an interpreter with {', '.join(REQUIRED_MODULES)} installed."
        )
    return python


def default_point_size(context: bpy.types.Context | None = None) -> float:
    prefs = get_preferences(context)
    return prefs.point_size if prefs is not None else 0.01


def register() -> None:
    bpy.utils.register_class(OV3R_AddonPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(OV3R_AddonPreferences)
