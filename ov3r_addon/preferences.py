"""Add-on preferences: which Python runs the workers, the managed environment ("Install
Dependencies"), weights folder, device, download permission, default vocabulary and point size.

"Automatic" (empty path) means Blender's own interpreter (``sys.executable``) when it
can import the engine's dependencies, else the managed venv in the extension's user
folder once "Install Dependencies" made it; otherwise the user is told what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from ..core.semantics.query import DEFAULT_VOCABULARY, parse_vocabulary

# The add-on's package (``bl_ext.<repo>.ov3r`` in Blender): preferences are keyed by it.
ADDON_PACKAGE = __package__.rpartition(".")[0]
REQUIRED_MODULES = ("numpy", "av", "pycolmap")
WORKER_PYTHON_ENV = "OV3R_WORKER_PYTHON"  # used when the preference is empty

_dep_check_cache: dict[str, str] = {}  # python path -> "" (ok) or the error text

DEVICE_ITEMS = [("auto", "Automatic", "CUDA when available, else CPU"), ("cpu", "CPU", "Always the CPU"),
                ("cuda", "CUDA", "An NVIDIA GPU through torch's CUDA device")]


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
    fallback_python: StringProperty(
        name="Fallback Python",
        description="Python 3.11 or 3.13 that 'Install Dependencies' builds the worker environment from when "
        "Blender's own Python cannot (empty = Blender's only)",
        subtype="FILE_PATH",
        default="",
    )
    point_size: FloatProperty(name="Default Point Size", default=0.01, min=0.0, soft_max=0.1, subtype="DISTANCE")
    weights_dir: StringProperty(
        name="Weights Folder", subtype="DIR_PATH", default="",
        description="Folder with model checkpoints (empty = only the weights shipped with the extension)",
    )
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="auto")
    allow_downloads: BoolProperty(
        name="Allow Model Downloads", default=False,
        description="Let the workers download optional model weights (only while Blender's "
        "'Allow Online Access' is on as well)",
    )
    default_vocabulary: StringProperty(
        name="Default Vocabulary", default=DEFAULT_VOCABULARY,
        description="Comma-separated class names used by 'Label All' when a scan has no vocabulary of its own",
    )

    def draw(self, context: bpy.types.Context) -> None:
        from . import deps_installer

        layout = self.layout
        layout.prop(self, "worker_python")
        python = bpy.path.abspath(self.worker_python) if self.worker_python else sys.executable
        problem = _dep_check_cache.get(python)
        if problem:
            layout.label(text=f"Not usable: {problem.splitlines()[-1][:120]}", icon="ERROR")
        elif problem == "":
            layout.label(text=f"Worker Python OK: {python}", icon="CHECKMARK")
        box = layout.box()
        inst = deps_installer.active()
        if inst is not None and inst.running:
            box.progress(factor=inst.progress, type="BAR", text=inst.message)
        else:
            row = box.row()
            row.operator("ov3r.install_dependencies", icon="IMPORT")
            row.enabled = bpy.app.online_access
            if not bpy.app.online_access:
                box.label(text="Online access is off (Preferences > System > Network)", icon="INFO")
            if inst is not None and (inst.error or inst.done):
                box.label(text=inst.error or inst.message, icon="ERROR" if inst.error else "CHECKMARK")
                box.label(text=f"Log: {inst.log_path}")
        box.prop(self, "fallback_python")
        managed = managed_python()
        box.label(text=f"Managed environment: {managed if managed else 'not installed'}")
        layout.prop(self, "weights_dir")
        layout.prop(self, "device")
        row = layout.row()
        row.prop(self, "allow_downloads")
        row.active = bpy.app.online_access
        layout.prop(self, "default_vocabulary")
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


def managed_venv_dir(create: bool = False) -> str:
    """``<extension user folder>/venv`` ("" when the add-on runs outside the extension system)."""
    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path="venv", create=create)
    except (ValueError, RuntimeError, AttributeError):
        return ""


def managed_python() -> str:
    """The managed venv's interpreter when it exists, else ""."""
    from .deps_installer import venv_python

    d = managed_venv_dir()
    py = venv_python(d) if d else None
    return str(py) if py is not None and py.is_file() else ""


def fallback_python(context: bpy.types.Context | None = None) -> str:
    """The preference "Fallback Python" for Install Dependencies ("" when unset)."""
    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.fallback_python) if prefs is not None and prefs.fallback_python else ""


def online_allowed() -> bool:
    """Blender's own switch (Preferences > System > Network > Allow Online Access)."""
    return bool(bpy.app.online_access)


def downloads_allowed(context: bpy.types.Context | None = None) -> bool:
    prefs = get_preferences(context)
    return bool(prefs is not None and prefs.allow_downloads and online_allowed())


def device(context: bpy.types.Context | None = None) -> str:
    """"cpu" or "cuda" for the workers ("auto" picks CUDA only when torch sees a GPU)."""
    prefs = get_preferences(context)
    choice = prefs.device if prefs is not None else "auto"
    if choice != "auto":
        return choice
    return "cuda" if os.path.exists("/proc/driver/nvidia/version") or os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu"


def weights_dir(context: bpy.types.Context | None = None) -> str:
    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.weights_dir) if prefs is not None and prefs.weights_dir else ""


def default_vocabulary(context: bpy.types.Context | None = None) -> list[str]:
    prefs = get_preferences(context)
    text = prefs.default_vocabulary if prefs is not None and prefs.default_vocabulary.strip() else DEFAULT_VOCABULARY
    return parse_vocabulary(text)


def configured_worker_python(context: bpy.types.Context | None = None) -> str:
    """The preference "Worker Python", else ``$OV3R_WORKER_PYTHON`` (scripts, CI), else ""."""
    prefs = get_preferences(context)
    if prefs is not None and prefs.worker_python:
        return bpy.path.abspath(prefs.worker_python)
    return os.environ.get(WORKER_PYTHON_ENV, "")


def resolve_worker_python(context: bpy.types.Context | None = None) -> str:
    """The interpreter to start the worker with, or WorkerPythonError with a clear message."""
    chosen = configured_worker_python(context)
    python = chosen or sys.executable
    if not chosen and check_python(python) and managed_python():
        python = managed_python()  # Blender's Python lacks the deps: the managed venv has them
    problem = check_python(python)
    if problem:
        last = problem.strip().splitlines()[-1] if problem.strip() else problem
        where = f"The configured worker Python ({python})" if chosen else f"Blender's Python ({python})"
        raise WorkerPythonError(
            f"{where} cannot run the Ov3R worker ({last}). In Edit > Preferences > Add-ons > Ov3R, set "
            f"'Worker Python' to an interpreter with {', '.join(REQUIRED_MODULES)} installed, or press "
            f"'Install Dependencies' there."
        )
    return python


def default_point_size(context: bpy.types.Context | None = None) -> float:
    prefs = get_preferences(context)
    return prefs.point_size if prefs is not None else 0.01


def register() -> None:
    bpy.utils.register_class(OV3R_AddonPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(OV3R_AddonPreferences)
