"""Isolate the points matching the query into a new object; split a labelled scan into one
object per label."""

from __future__ import annotations

import bpy

from ..ov3r_addon import isolate, scan_query
from .common import ScanPoll, active_scan


class OV3R_OT_isolate(ScanPoll, bpy.types.Operator):
    """Copy the points matching the current query (at the threshold) into a new object"""

    bl_idname = "ov3r.isolate"
    bl_label = "Isolate Matches"
    bl_options = {"REGISTER", "UNDO"}


    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = active_scan(context)
        try:
            mask = scan_query.match_mask(obj, obj.ov3r_scan.threshold)
        except scan_query.ScanError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not mask.any():
            self.report({"ERROR"}, "No point matches the query at this threshold: lower it")
            return {"CANCELLED"}
        text = scan_query.last_query(obj)["text"]
        new = isolate.subset_object(obj, mask, f"{obj.name} [{text}]")
        for other in context.view_layer.objects.selected:
            other.select_set(False)
        new.select_set(True)
        context.view_layer.objects.active = new
        self.report({"INFO"}, f"Ov3R: {int(mask.sum()):,} points isolated into {new.name!r}")
        return {"FINISHED"}


class OV3R_OT_split_labels(ScanPoll, bpy.types.Operator):
    """One object per label of the active scan, in a collection of their own"""

    bl_idname = "ov3r.split_labels"
    bl_label = "One Object per Label"
    bl_options = {"REGISTER", "UNDO"}


    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = active_scan(context)
        try:
            objs = isolate.split_by_label(obj, f"Ov3R labels {obj.name}")
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Ov3R: {len(objs)} label objects")
        return {"FINISHED"}


CLASSES = (OV3R_OT_isolate, OV3R_OT_split_labels)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
