"""File > Import > Video as Ov3R Scene: pick a video, start the reconstruction job.

From scripts (and in background mode, where timers never run) pass ``wait=True`` to run
the job to its end inside the operator:
``bpy.ops.ov3r.import_video(filepath="/videos/room.mp4", max_frames=200, wait=True)``.
"""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..ov3r_addon import job_runner
from ..ov3r_addon.preferences import WorkerPythonError, default_point_size
from ..ov3r_addon.properties import ENGINE_ITEMS

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".wmv", ".3gp", ".ogv")


def validate_video_path(path: str) -> str | None:
    """None when ``path`` is a readable file, else the message for the user."""
    if not path:
        return "No video file selected"
    if not os.path.exists(path):
        return f"Video not found: {path}"
    if not os.path.isfile(path):
        return f"Not a file: {path}"
    if not os.access(path, os.R_OK):
        return f"Video is not readable (permissions): {path}"
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        return f"Cannot read the video: {exc}"
    return None


class OV3R_OT_import_video(bpy.types.Operator, ImportHelper):
    """Reconstruct a room video into a coloured point cloud with its camera path"""

    bl_idname = "ov3r.import_video"
    bl_label = "Import Video as Ov3R Scene"
    bl_options = {"REGISTER"}

    filter_glob: StringProperty(default=";".join(f"*{e}" for e in VIDEO_EXTENSIONS), options={"HIDDEN"})
    engine: EnumProperty(name="Engine", items=ENGINE_ITEMS, default="sfm")
    max_frames: IntProperty(name="Max Frames", default=0, min=0, description="0 = automatic")
    max_side: IntProperty(name="Max Side", default=0, min=0, subtype="PIXEL", description="0 = automatic")
    point_size: FloatProperty(name="Point Size", default=0.01, min=0.0, soft_max=0.1, subtype="DISTANCE")
    align: BoolProperty(name="Align to Floor", default=True,
                        description="Floor on Z=0 (up = +Z), main walls along X / Y")
    wait: BoolProperty(
        name="Wait", default=False, options={"HIDDEN", "SKIP_SAVE"},
        description="Run the job to its end before returning (scripts, background mode)",
    )
    worker_python: StringProperty(
        name="Worker Python", default="", options={"HIDDEN", "SKIP_SAVE"},
        description="Override the worker interpreter (scripts and tests); empty = preferences",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if job_runner.is_running():
            cls.poll_message_set("An Ov3R import is already running")
            return False
        return True

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        settings = getattr(context.scene, "ov3r_settings", None)
        if settings is not None:
            self.engine = settings.engine
            self.max_frames = settings.max_frames
            self.max_side = settings.max_side
            self.point_size = settings.point_size
            self.align = settings.align
        return ImportHelper.invoke(self, context, event)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        for prop in ("engine", "max_frames", "max_side", "point_size", "align"):
            layout.prop(self, prop)

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = bpy.path.abspath(self.filepath)
        problem = validate_video_path(path)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        settings = job_runner.ImportSettings(
            engine=self.engine, max_frames=self.max_frames, max_side=self.max_side, align=self.align,
            point_size=self.point_size if self.properties.is_property_set("point_size") else default_point_size(context),
        )
        try:
            job = job_runner.start_import(
                context, path, settings, python=self.worker_python or None, use_timer=not self.wait
            )
        except (WorkerPythonError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not self.wait:
            self.report({"INFO"}, f"Ov3R: reconstructing {os.path.basename(path)}...")
            return {"FINISHED"}
        state = job.wait()
        if state != job_runner.DONE:
            self.report({"ERROR"}, f"Ov3R import failed: {job.message}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Ov3R: imported {os.path.basename(path)} ({job.message})")
        if job.warning:
            self.report({"WARNING"}, f"Ov3R: {job.warning}")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(OV3R_OT_import_video)


def unregister() -> None:
    bpy.utils.unregister_class(OV3R_OT_import_video)
