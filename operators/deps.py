"""Preferences > Install Dependencies: a managed venv for the workers, installed in a
subprocess (Blender stays responsive; progress in the preferences, a log file)."""

from __future__ import annotations

import sys

import bpy
from bpy.props import BoolProperty, StringProperty

from ..ov3r_addon import deps_installer, preferences

POLL_INTERVAL = 0.5


class OV3R_OT_install_dependencies(bpy.types.Operator):
    """Create a Python environment for the Ov3R workers in the extension's user folder and
    install the engine's packages into it (needs online access)"""

    bl_idname = "ov3r.install_dependencies"
    bl_label = "Install Dependencies"
    bl_options = {"REGISTER"}

    wait: BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})
    requirements: StringProperty(default="", options={"HIDDEN", "SKIP_SAVE"},
                                 description="Override the requirements file (tests)")
    venv_dir: StringProperty(default="", options={"HIDDEN", "SKIP_SAVE"},
                             description="Override the environment folder (tests)")
    dry_run: BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"},
                          description="Resolve every package with pip but install none (CI)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        inst = deps_installer.active()
        if inst is not None and inst.running:
            cls.poll_message_set("An installation is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not preferences.online_allowed():
            self.report({"ERROR"}, "Online access is disabled (Preferences > System > Network > Allow Online "
                        "Access): nothing was downloaded")
            return {"CANCELLED"}
        try:
            base = deps_installer.choose_base_python(sys.executable, preferences.fallback_python(context))
        except deps_installer.BasePythonError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        venv = self.venv_dir or preferences.managed_venv_dir(create=True)
        if not venv:
            self.report({"ERROR"}, "No user folder for the extension (is it installed as an extension?)")
            return {"CANCELLED"}
        steps = deps_installer.default_steps(venv, base_python=base, dry_run=self.dry_run,
                                             requirements=self.requirements or deps_installer.REQUIREMENTS)
        inst = deps_installer.DepsInstaller(steps, f"{venv.rstrip('/')}-install.log")
        deps_installer.set_active(inst.start())
        if self.wait:
            inst.wait()
            return self._finish(inst)
        bpy.app.timers.register(_timer, first_interval=POLL_INTERVAL)
        self.report({"INFO"}, f"Ov3R: installing dependencies with {base} (log: {inst.log_path})")
        return {"FINISHED"}

    def _finish(self, inst: deps_installer.DepsInstaller) -> set[str]:
        preferences._dep_check_cache.clear()
        if inst.error:
            self.report({"ERROR"}, f"Installation failed: {inst.error}")
            return {"CANCELLED"}
        self.report({"INFO"}, "Ov3R: dependencies installed")
        return {"FINISHED"}


def _timer() -> float | None:
    inst = deps_installer.active()
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
    if inst is not None and inst.running:
        return POLL_INTERVAL
    preferences._dep_check_cache.clear()
    return None


def register() -> None:
    bpy.utils.register_class(OV3R_OT_install_dependencies)


def unregister() -> None:
    inst = deps_installer.active()
    if inst is not None and inst.running:
        inst.cancel()
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    bpy.utils.unregister_class(OV3R_OT_install_dependencies)
