"""Blocking proxies: oriented boxes per segment or per label."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty

from ..ov3r_addon import proxies
from .common import ScanPoll, active_scan


class OV3R_OT_make_proxies(ScanPoll, bpy.types.Operator):
    """One oriented box per segment (or per label) of the active scan, named by its label"""

    bl_idname = "ov3r.make_proxies"
    bl_label = "Blocking Proxies"
    bl_options = {"REGISTER", "UNDO"}

    mode: EnumProperty(name="Mode", items=[("SCAN", "As in the Sidebar", ""), ("SEGMENT", "Per Segment", ""),
                                           ("LABEL", "Per Label", "")], default="SCAN", options={"SKIP_SAVE"})
    min_points: IntProperty(name="Min Points", default=0, min=0, options={"SKIP_SAVE"},
                            description="0 = the sidebar's value")


    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = active_scan(context)
        scan = obj.ov3r_scan
        mode = scan.proxy_mode if self.mode == "SCAN" else self.mode
        try:
            made = proxies.make_proxies(obj, mode, self.min_points or scan.proxy_min_points)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Ov3R: {len(made)} proxies in {proxies.collection_name(obj)!r}")
        return {"FINISHED"}


def register() -> None:
    bpy.utils.register_class(OV3R_OT_make_proxies)


def unregister() -> None:
    bpy.utils.unregister_class(OV3R_OT_make_proxies)
