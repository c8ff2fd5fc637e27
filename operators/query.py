"""Text queries on the active scan: Select (scores -> ``query_score`` + selection + score
display), and the saved-queries list (save, remove, run)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from ..ov3r_addon import query_runner, scan_query
from ..ov3r_addon.query_client import QueryError
from ..ov3r_addon.query_scores import DimensionMismatch
from .common import ScanPoll, active_scan, poll_scan


def run_query(op: bpy.types.Operator, context: bpy.types.Context, text: str, threshold: float | None,
              wait: bool) -> set[str]:
    obj = active_scan(context)
    scan = obj.ov3r_scan
    text = text.strip()
    if not text:
        op.report({"ERROR"}, "Empty query: type what to look for")
        return {"CANCELLED"}
    try:
        scan_query.check_scan(obj)
    except scan_query.ScanError as exc:
        op.report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    name = obj.name
    thr = scan.threshold if threshold is None else threshold
    result: dict[str, str] = {}

    def apply(emb) -> None:
        target = bpy.data.objects.get(name)
        if target is None:
            return
        with query_runner.object_mode(target):
            points, segs = scan_query.apply_query(target, text, emb, thr)
        target.ov3r_scan.query = text
        if abs(target.ov3r_scan.threshold - thr) > 1e-9:
            target.ov3r_scan["threshold"] = thr  # no update callback: apply_query did it
        target.ov3r_scan["display"] = 1  # SCORE
        result["msg"] = f"'{text}': {points:,} points in {segs} segments at score >= {thr:.2f}"

    try:
        state = query_runner.embed(context, [text], apply,
                                   lambda msg: query_runner.report_async_error(msg), wait=wait)
    except (QueryError, DimensionMismatch, scan_query.ScanError) as exc:
        op.report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    if state == "PENDING":
        op.report({"INFO"}, "Ov3R: starting the query worker (the model loads once)...")
    else:
        op.report({"INFO"}, f"Ov3R: {result.get('msg', 'done')}")
    return {"FINISHED"}


class OV3R_OT_query_select(ScanPoll, bpy.types.Operator):
    """Score every point of the active scan against a text and select the matching ones"""

    bl_idname = "ov3r.query_select"
    bl_label = "Select by Text"
    bl_options = {"REGISTER", "UNDO"}

    text: StringProperty(name="Query", default="", options={"SKIP_SAVE"},
                         description="Empty = the query field of the sidebar")
    threshold: FloatProperty(name="Threshold", default=-2.0, min=-2.0, max=1.0, options={"SKIP_SAVE"},
                             description="-2 = the sidebar's threshold")
    wait: BoolProperty(name="Wait", default=False, options={"HIDDEN", "SKIP_SAVE"},
                       description="Wait for the worker's answer (scripts, background mode)")

    poll_modes = ("OBJECT", "EDIT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        scan = context.active_object.ov3r_scan
        return run_query(self, context, self.text or scan.query, None if self.threshold < -1.5 else self.threshold,
                         self.wait)


class OV3R_OT_query_save(ScanPoll, bpy.types.Operator):
    """Keep the current query and threshold in the scan's list of saved queries"""

    bl_idname = "ov3r.query_save"
    bl_label = "Save Query"
    bl_options = {"REGISTER", "UNDO"}

    poll_modes = ("OBJECT", "EDIT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        scan = context.active_object.ov3r_scan
        text = scan.query.strip()
        if not text:
            self.report({"ERROR"}, "Empty query: nothing to save")
            return {"CANCELLED"}
        item = next((q for q in scan.saved if q.name == text), None) or scan.saved.add()
        item.name, item.threshold = text, scan.threshold
        scan.saved_index = list(scan.saved).index(item)
        return {"FINISHED"}


class OV3R_OT_query_remove(bpy.types.Operator):
    """Remove the selected saved query"""

    bl_idname = "ov3r.query_remove"
    bl_label = "Remove Saved Query"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not poll_scan(cls, context, ("OBJECT", "EDIT")):
            return False
        scan = context.active_object.ov3r_scan
        return 0 <= scan.saved_index < len(scan.saved)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scan = context.active_object.ov3r_scan
        scan.saved.remove(scan.saved_index)
        scan.saved_index = min(scan.saved_index, len(scan.saved) - 1)
        return {"FINISHED"}


class OV3R_OT_query_run_saved(bpy.types.Operator):
    """Run the selected saved query (its text and threshold)"""

    bl_idname = "ov3r.query_run_saved"
    bl_label = "Run Saved Query"
    bl_options = {"REGISTER", "UNDO"}

    wait: BoolProperty(name="Wait", default=False, options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if not poll_scan(cls, context, ("OBJECT", "EDIT")):
            return False
        scan = context.active_object.ov3r_scan
        return 0 <= scan.saved_index < len(scan.saved)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scan = context.active_object.ov3r_scan
        item = scan.saved[scan.saved_index]
        return run_query(self, context, item.name, item.threshold, self.wait)


CLASSES = (OV3R_OT_query_select, OV3R_OT_query_save, OV3R_OT_query_remove, OV3R_OT_query_run_saved)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
