"""Scene alignment (floor on Z=0, walls along X / Y) and real-world scale for artists."""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import EnumProperty, FloatProperty, StringProperty

from ..core.scene.align import alignment_transform, scale_transform
from ..ov3r_addon import blend_storage, point_attrs, scan_transform
from .common import ScanPoll, active_scan


class OV3R_OT_align_scene(ScanPoll, bpy.types.Operator):
    """Put the floor on Z=0 (up = +Z) and the main walls along X and Y"""

    bl_idname = "ov3r.align_scene"
    bl_label = "Align to Floor"
    bl_options = {"REGISTER", "UNDO"}


    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = active_scan(context)
        pts = point_attrs.read(obj.data, "position")
        try:
            t = alignment_transform(pts, blend_storage.read_cameras(obj).world_from_camera)
        except ValueError as exc:
            self.report({"ERROR"}, f"Cannot align: {exc}")
            return {"CANCELLED"}
        scan_transform.apply_similarity(obj, t, context.scene)
        self.report({"INFO"}, "Ov3R: floor at Z=0, walls along X / Y")
        return {"FINISHED"}


class OV3R_OT_scale_point_a(ScanPoll, bpy.types.Operator):
    """Remember the 3D cursor as the first point of a known distance"""

    bl_idname = "ov3r.scale_point_a"
    bl_label = "Cursor as Point A"
    bl_options = {"REGISTER", "UNDO"}

    poll_modes = ("OBJECT", "EDIT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        scan = context.active_object.ov3r_scan
        scan.scale_point_a = context.scene.cursor.location
        scan.has_point_a = True
        self.report({"INFO"}, "Ov3R: point A stored; move the cursor to point B and Set Scale")
        return {"FINISHED"}


class OV3R_OT_set_scale(ScanPoll, bpy.types.Operator):
    """Scale the scan (points, cameras, proxies) so a known distance has its real length"""

    bl_idname = "ov3r.set_scale"
    bl_label = "Set Real Scale"
    bl_options = {"REGISTER", "UNDO"}

    source: EnumProperty(name="From", items=[
        ("VERTICES", "Two Selected Points", "The distance between the two selected vertices"),
        ("CURSOR", "Point A and Cursor", "The stored point A and the 3D cursor"),
        ("SEGMENT", "Known Size", "A labelled segment's height, e.g. 'door: 2.0'"),
    ], default="VERTICES")
    distance: FloatProperty(name="Known Distance", default=0.0, min=0.0, subtype="DISTANCE", unit="LENGTH",
                            options={"SKIP_SAVE"}, description="0 = the sidebar's value")
    size_spec: StringProperty(name="Known Size", default="", options={"SKIP_SAVE"},
                              description="Empty = the sidebar's, e.g. 'door: 2.0'")

    poll_modes = ("OBJECT", "EDIT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = active_scan(context)
        scan = obj.ov3r_scan
        try:
            t = self._transform(context, obj, scan)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        was_edit = obj.mode == "EDIT"
        if was_edit:
            bpy.ops.object.mode_set(mode="OBJECT")
        scan_transform.apply_similarity(obj, t, context.scene)
        if scan.has_point_a:
            scan.scale_point_a = (np.asarray(scan.scale_point_a) * t[0, 0]).tolist()
        if was_edit:
            bpy.ops.object.mode_set(mode="EDIT")
        self.report({"INFO"}, f"Ov3R: scaled by {t[0, 0]:.4f}")
        return {"FINISHED"}

    def _transform(self, context: bpy.types.Context, obj: bpy.types.Object, scan) -> np.ndarray:
        if self.source == "SEGMENT":
            measured, true, _what = scan_transform.segment_size(obj, self.size_spec or scan.size_spec)
            if measured <= 1e-9:
                raise ValueError("That segment has no size")
            return scale_transform(np.zeros(3), np.array([measured, 0, 0]), true)
        dist = self.distance or scan.scale_distance
        if self.source == "CURSOR":
            if not scan.has_point_a:
                raise ValueError("Store point A first (3D cursor, 'Cursor as Point A')")
            inv = np.linalg.inv(np.array(obj.matrix_world))
            a = inv @ np.append(np.asarray(scan.scale_point_a), 1.0)
            b = inv @ np.append(np.asarray(context.scene.cursor.location), 1.0)
            return scale_transform(a[:3], b[:3], dist)
        pts = scan_transform.selected_vertices(obj)
        if len(pts) != 2:
            raise ValueError(f"Select exactly two points (edit mode); {len(pts)} are selected")
        return scale_transform(pts[0], pts[1], dist)


CLASSES = (OV3R_OT_align_scene, OV3R_OT_scale_point_a, OV3R_OT_set_scale)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
