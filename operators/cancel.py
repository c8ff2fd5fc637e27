"""Cancel the running import: the worker's process group is terminated and everything
built so far is removed."""

from __future__ import annotations

import bpy

from ..ov3r_addon import job_runner


class OV3R_OT_cancel_job(bpy.types.Operator):
    """Stop the running Ov3R import and remove its partial result"""

    bl_idname = "ov3r.cancel_job"
    bl_label = "Cancel Ov3R Import"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return job_runner.is_running()

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not job_runner.cancel_active():
            self.report({"WARNING"}, "No Ov3R import is running")
            return {"CANCELLED"}
        self.report({"INFO"}, "Ov3R import cancelled")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(OV3R_OT_cancel_job)


def unregister() -> None:
    bpy.utils.unregister_class(OV3R_OT_cancel_job)
