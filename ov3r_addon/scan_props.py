"""Per-scan settings on the points object (``obj.ov3r_scan``, saved with the .blend): the
query field, threshold and display, saved queries, the vocabulary and its legend, proxy
and scale inputs."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

DISPLAY_ITEMS = [("COLOR", "Color", "The scan's colours"), ("SCORE", "Score", "The last query's score"),
                 ("LABEL", "Labels", "The labels of Label All")]


def _threshold_changed(self: OV3R_PG_scan, context: bpy.types.Context) -> None:
    from . import scan_query

    obj = self.id_data
    if isinstance(obj, bpy.types.Object) and obj.mode == "OBJECT":
        scan_query.set_threshold(obj, self.threshold, select=self.live_select)


def _display_changed(self: OV3R_PG_scan, context: bpy.types.Context) -> None:
    from . import point_display

    obj = self.id_data
    if isinstance(obj, bpy.types.Object):
        point_display.set_display(obj, self.display, self.threshold)


def _legend_color_changed(self: OV3R_PG_legend_item, context: bpy.types.Context) -> None:
    from . import scan_labels

    obj = self.id_data
    if isinstance(obj, bpy.types.Object):
        scan_labels.set_label_color(obj, self.label_id, tuple(self.color))


class OV3R_PG_saved_query(bpy.types.PropertyGroup):
    # ``name`` (the query text) is inherited from PropertyGroup.
    threshold: FloatProperty(name="Threshold", default=0.3, min=-1.0, max=1.0)


class OV3R_PG_legend_item(bpy.types.PropertyGroup):
    label_id: IntProperty(name="Label Id", default=-1)
    color: FloatVectorProperty(name="Color", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.5, 0.5, 0.5),
                               update=_legend_color_changed)
    points: IntProperty(name="Points", default=0)


class OV3R_PG_scan(bpy.types.PropertyGroup):
    query: StringProperty(name="Query", default="", description="What to look for, e.g. 'sofa' or 'wooden chair'")
    threshold: FloatProperty(name="Threshold", default=0.3, min=-1.0, max=1.0, soft_min=0.0, step=1,
                             update=_threshold_changed,
                             description="Segments whose score is at least this match the query")
    live_select: BoolProperty(name="Live Selection", default=True,
                              description="Moving the threshold also updates the selection")
    display: EnumProperty(name="Display", items=DISPLAY_ITEMS, default="COLOR", update=_display_changed)
    saved: CollectionProperty(type=OV3R_PG_saved_query)
    saved_index: IntProperty(name="Saved Query", default=0)
    vocabulary: StringProperty(name="Vocabulary", default="",
                               description="Comma-separated class names (empty = the preferences' default)")
    label_threshold: FloatProperty(name="Min Score", default=0.0, min=-1.0, max=1.0,
                                   description="Segments scoring under this for every class stay unlabeled")
    legend: CollectionProperty(type=OV3R_PG_legend_item)
    legend_index: IntProperty(default=0)
    proxy_mode: EnumProperty(name="Proxies", items=[("SEGMENT", "Per Segment", "One box per segment"),
                                                    ("LABEL", "Per Label", "One box per label")], default="SEGMENT")
    proxy_min_points: IntProperty(name="Min Points", default=50, min=1,
                                  description="Skip segments with fewer points")
    scale_distance: FloatProperty(name="Known Distance", default=1.0, min=1e-4, subtype="DISTANCE", unit="LENGTH")
    scale_point_a: FloatVectorProperty(name="Point A", size=3, subtype="XYZ", unit="LENGTH")
    has_point_a: BoolProperty(default=False)
    size_spec: StringProperty(name="Known Size", default="door: 2.0",
                              description="'label: metres' (the segment's height) or 'segment 12: 0.8'")


CLASSES = (OV3R_PG_saved_query, OV3R_PG_legend_item, OV3R_PG_scan)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.ov3r_scan = PointerProperty(type=OV3R_PG_scan)


def unregister() -> None:
    del bpy.types.Object.ov3r_scan
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
