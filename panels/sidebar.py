"""3D viewport sidebar tab "Ov3R": import + settings, progress with Cancel, info about the
active Ov3R object and its point size."""

from __future__ import annotations

import bpy

from ..ov3r_addon import blend_storage, compat, point_display


class VIEW3D_PT_ov3r_import(bpy.types.Panel):
    bl_label = "Import"
    bl_idname = "VIEW3D_PT_ov3r_import"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Ov3R"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        job = getattr(context.window_manager, "ov3r_job", None)
        if job is not None and job.running:
            layout.label(text=bpy.path.basename(job.video) or "Importing", icon="FILE_MOVIE")
            layout.progress(factor=job.progress, type="BAR", text=job.message or job.stage or "Starting...")
            layout.operator("ov3r.cancel_job", text="Cancel", icon="CANCEL")
            return
        layout.operator("ov3r.import_video", text="Import Video...", icon="FILE_MOVIE")
        layout.operator("ov3r.import_scene", text="Open Ov3R Scene...", icon="FILE_FOLDER")
        settings = getattr(context.scene, "ov3r_settings", None)
        if settings is not None:
            col = layout.column(align=True)
            col.use_property_split = True
            col.use_property_decorate = False
            col.prop(settings, "engine")
            col.prop(settings, "max_frames")
            col.prop(settings, "max_side")
            col.prop(settings, "point_size")
            col.prop(settings, "align")
        if job is not None and job.error:
            box = layout.box()
            box.label(text="Last import failed:", icon="ERROR")
            box.label(text=job.error[:200])
        elif job is not None and job.warning:
            box = layout.box()
            box.label(text="Last import is incomplete:", icon="ERROR")
            for line in job.warning.split("; ")[:4]:
                box.label(text=line[:200])


class VIEW3D_PT_ov3r_object(bpy.types.Panel):
    bl_label = "Active Scan"
    bl_idname = "VIEW3D_PT_ov3r_object"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Ov3R"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return blend_storage.info(context.active_object) is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        obj = context.active_object
        info = blend_storage.info(obj) or {}
        col = layout.column(align=True)
        col.label(text=f"Points: {len(obj.data.vertices):,}", icon="POINTCLOUD_DATA")
        col.label(text=f"Keyframes: {info.get('keyframes', 0)}", icon="CAMERA_DATA")
        col.label(text=f"Segments: {info.get('segments', 0)}")
        col.label(text=f"Engine: {info.get('engine') or '?'}")
        if info.get("partial"):
            col.label(text="Partial result", icon="INFO")
        mod = point_display.points_modifier(obj)
        if mod is not None:
            ident = point_display.point_size_identifier(mod.node_group)
            compat.draw_modifier_input(layout, mod, ident, "Point Size")


CLASSES = (VIEW3D_PT_ov3r_import, VIEW3D_PT_ov3r_object)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
