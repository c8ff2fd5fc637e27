"""Label All: each segment of the active scan takes the closest word of the vocabulary."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from ..ov3r_addon import preferences, query_runner, scan_labels, scan_query
from ..ov3r_addon.query_client import QueryError
from ..ov3r_addon.query_scores import DimensionMismatch
from .common import ScanPoll, active_scan


class OV3R_OT_label_all(ScanPoll, bpy.types.Operator):
    """Label every segment of the active scan with the closest word of the vocabulary"""

    bl_idname = "ov3r.label_all"
    bl_label = "Label All"
    bl_options = {"REGISTER", "UNDO"}

    vocabulary: StringProperty(name="Vocabulary", default="", options={"SKIP_SAVE"},
                               description="Comma-separated classes (empty = the scan's, else the preferences')")
    wait: BoolProperty(name="Wait", default=False, options={"HIDDEN", "SKIP_SAVE"})

    poll_modes = ("OBJECT", "EDIT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = active_scan(context)
        scan = obj.ov3r_scan
        text = self.vocabulary or scan.vocabulary
        vocab = preferences.parse_vocabulary(text) if text.strip() else preferences.default_vocabulary(context)
        if not vocab:
            self.report({"ERROR"}, "The vocabulary is empty: list class names separated by commas")
            return {"CANCELLED"}
        try:
            scan_query.check_scan(obj)
        except scan_query.ScanError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        name, threshold = obj.name, scan.label_threshold
        result: dict[str, str] = {}

        def apply(emb) -> None:
            target = bpy.data.objects.get(name)
            if target is None:
                return
            with query_runner.object_mode(target):
                counts = scan_labels.apply_labels(target, vocab, emb, threshold)
            target.ov3r_scan["display"] = 2  # LABEL
            used = int((counts > 0).sum())
            result["msg"] = f"{used} of {len(vocab)} labels used, {int(counts.sum()):,} points labelled"

        try:
            state = query_runner.embed(context, vocab, apply, lambda m: query_runner.report_async_error(
                m, "Ov3R Label All failed"), wait=self.wait)
        except (QueryError, DimensionMismatch) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Ov3R: {result['msg']}" if state == "DONE" else
                    "Ov3R: starting the query worker (the model loads once)...")
        return {"FINISHED"}


class OV3R_OT_vocabulary_reset(ScanPoll, bpy.types.Operator):
    """Fill the scan's vocabulary with the default list of the preferences"""

    bl_idname = "ov3r.vocabulary_reset"
    bl_label = "Default Vocabulary"
    bl_options = {"REGISTER", "UNDO"}

    poll_modes = ("OBJECT", "EDIT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.active_object.ov3r_scan.vocabulary = ", ".join(preferences.default_vocabulary(context))
        return {"FINISHED"}


CLASSES = (OV3R_OT_label_all, OV3R_OT_vocabulary_reset)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
