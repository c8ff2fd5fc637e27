"""File > Export entries for the active scan: PLY (+ labels JSON, optionally one PLY per
label) and glTF with the point attributes."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..ov3r_addon import exports
from .common import ScanPoll, active_scan


class OV3R_OT_export_ply(ScanPoll, bpy.types.Operator, ExportHelper):
    """Export the active Ov3R scan as PLY with segment_id, label_id, score and a labels JSON"""

    bl_idname = "ov3r.export_ply"
    bl_label = "Export Ov3R PLY"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={"HIDDEN"})
    per_label: BoolProperty(name="One File per Label", default=False)


    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            files = exports.export_ply(active_scan(context), bpy.path.abspath(self.filepath), self.per_label)
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"PLY export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Ov3R: wrote {len(files)} files ({files[0].name}, ...)")
        return {"FINISHED"}


class OV3R_OT_export_gltf(ScanPoll, bpy.types.Operator, ExportHelper):
    """Export the active Ov3R scan as glTF points with its attributes (_segment_id, _label_id, _score)"""

    bl_idname = "ov3r.export_gltf"
    bl_label = "Export Ov3R glTF"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb;*.gltf", options={"HIDDEN"})
    format: EnumProperty(name="Format", items=[("GLB", "glTF Binary (.glb)", ""),
                                               ("GLTF", "glTF Separate (.gltf + .bin)", "")], default="GLB")

    def check(self, context: bpy.types.Context) -> bool:
        self.filename_ext = ".glb" if self.format == "GLB" else ".gltf"
        return ExportHelper.check(self, context)


    def execute(self, context: bpy.types.Context) -> set[str]:
        path = bpy.path.abspath(self.filepath)
        if not path.lower().endswith((".glb", ".gltf")):
            path += ".glb" if self.format == "GLB" else ".gltf"
        try:
            exports.export_gltf(active_scan(context), path, context)
        except (OSError, RuntimeError, ValueError) as exc:
            self.report({"ERROR"}, f"glTF export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Ov3R: wrote {path}")
        return {"FINISHED"}


def draw_export_entries(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator("ov3r.export_ply", text="Ov3R Scan, labelled (.ply)")
    self.layout.operator("ov3r.export_gltf", text="Ov3R Scan with attributes (.glb)")


CLASSES = (OV3R_OT_export_ply, OV3R_OT_export_gltf)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_export.append(draw_export_entries)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(draw_export_entries)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
