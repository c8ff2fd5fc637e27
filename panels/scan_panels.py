"""Sidebar "Ov3R" panels for the active scan: Query (field, Select, threshold with live
counts, display, saved queries), Labels (vocabulary, Label All, legend), Tools (isolate,
split, proxies, align, scale) and Export."""

from __future__ import annotations

import bpy

from ..ov3r_addon import blend_storage, query_runner, scan_labels, scan_query


class _ScanPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Ov3R"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return blend_storage.info(context.active_object) is not None


class OV3R_UL_saved_queries(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False, icon="VIEWZOOM")
        row.label(text=f"{item.threshold:.2f}")


class OV3R_UL_legend(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        sub = row.row()
        sub.ui_units_x = 1.5
        sub.prop(item, "color", text="")
        row.label(text=item.name)
        row.label(text=f"{item.points:,}")

    def filter_items(self, context, data, propname):
        items = getattr(data, propname)
        flags = [self.bitflag_filter_item if (it.points > 0 or not self.use_filter_show) else 0 for it in items]
        return flags, []


class VIEW3D_PT_ov3r_query(_ScanPanel, bpy.types.Panel):
    bl_label = "Query"
    bl_idname = "VIEW3D_PT_ov3r_query"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        obj = context.active_object
        scan = obj.ov3r_scan
        row = layout.row(align=True)
        row.prop(scan, "query", text="", icon="VIEWZOOM")
        row.operator("ov3r.query_select", text="Select")
        if query_runner.pending():
            layout.label(text="Waiting for the query worker...", icon="TIME")
        row = layout.row(align=True)
        row.prop(scan, "threshold", slider=True)
        row.prop(scan, "live_select", text="", icon="RESTRICT_SELECT_OFF")
        q = scan_query.last_query(obj)
        if q is not None:
            points, segs = scan_query.match_counts(obj, scan.threshold)
            layout.label(text=f"'{q['text']}': {points:,} points, {segs} segments", icon="RESTRICT_SELECT_OFF")
        layout.row().prop(scan, "display", expand=True)
        row = layout.row()
        row.template_list("OV3R_UL_saved_queries", "", scan, "saved", scan, "saved_index", rows=3)
        col = row.column(align=True)
        col.operator("ov3r.query_save", text="", icon="ADD")
        col.operator("ov3r.query_remove", text="", icon="REMOVE")
        col.operator("ov3r.query_run_saved", text="", icon="PLAY")


class VIEW3D_PT_ov3r_labels(_ScanPanel, bpy.types.Panel):
    bl_label = "Labels"
    bl_idname = "VIEW3D_PT_ov3r_labels"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scan = context.active_object.ov3r_scan
        row = layout.row(align=True)
        row.prop(scan, "vocabulary", text="")
        row.operator("ov3r.vocabulary_reset", text="", icon="LOOP_BACK")
        row = layout.row(align=True)
        row.prop(scan, "label_threshold")
        row.operator("ov3r.label_all", icon="COLOR")
        if scan_labels.label_names(context.active_object):
            layout.template_list("OV3R_UL_legend", "", scan, "legend", scan, "legend_index", rows=4)


class VIEW3D_PT_ov3r_tools(_ScanPanel, bpy.types.Panel):
    bl_label = "Scene Tools"
    bl_idname = "VIEW3D_PT_ov3r_tools"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scan = context.active_object.ov3r_scan
        row = layout.row(align=True)
        row.operator("ov3r.isolate", icon="SELECT_SET")
        row.operator("ov3r.split_labels", text="Per Label", icon="OUTLINER_COLLECTION")
        box = layout.box()
        row = box.row(align=True)
        row.prop(scan, "proxy_mode", text="")
        row.prop(scan, "proxy_min_points")
        box.operator("ov3r.make_proxies", icon="MESH_CUBE")
        box = layout.box()
        box.operator("ov3r.align_scene", icon="ORIENTATION_GLOBAL")
        box.prop(scan, "scale_distance")
        row = box.row(align=True)
        row.operator("ov3r.set_scale", text="From 2 Points").source = "VERTICES"
        row.operator("ov3r.scale_point_a", text="", icon="PIVOT_CURSOR")
        row.operator("ov3r.set_scale", text="A to Cursor").source = "CURSOR"
        row = box.row(align=True)
        row.prop(scan, "size_spec", text="")
        row.operator("ov3r.set_scale", text="From Size").source = "SEGMENT"


class VIEW3D_PT_ov3r_export(_ScanPanel, bpy.types.Panel):
    bl_label = "Export"
    bl_idname = "VIEW3D_PT_ov3r_export"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        row = self.layout.row(align=True)
        row.operator("ov3r.export_ply", text="PLY + Labels", icon="EXPORT")
        row.operator("ov3r.export_gltf", text="glTF", icon="EXPORT")


CLASSES = (OV3R_UL_saved_queries, OV3R_UL_legend, VIEW3D_PT_ov3r_query, VIEW3D_PT_ov3r_labels,
           VIEW3D_PT_ov3r_tools, VIEW3D_PT_ov3r_export)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
