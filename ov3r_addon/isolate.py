"""Points of a scan -> a new object with the same point attributes and display, itself an
Ov3R scan (its tables are copied: segment ids keep their meaning, so it can be queried)."""

from __future__ import annotations

import bpy
import numpy as np

from . import blend_storage, compat, point_attrs, point_display, scan_labels, scan_query

COPIED_KEYS = (blend_storage.INFO_KEY, blend_storage.SEGMENTS_KEY, blend_storage.CAMERAS_KEY,
               scan_labels.LABELS_KEY, scan_query.QUERY_KEY)


def subset_object(src: bpy.types.Object, mask: np.ndarray, name: str,
                  collection: bpy.types.Collection | None = None) -> bpy.types.Object:
    mesh = point_attrs.copy_subset(src.data, mask, name)
    obj = bpy.data.objects.new(name, mesh)
    (collection or src.users_collection[0]).objects.link(obj)
    obj.matrix_world = src.matrix_world.copy()
    for key in COPIED_KEYS:
        if key in src.keys():
            obj[key] = src[key]
    if blend_storage.INFO_KEY in obj.keys():
        obj[blend_storage.INFO_KEY]["point_count"] = len(mesh.vertices)
        obj[blend_storage.INFO_KEY]["isolated_from"] = src.name
    src_mod = point_display.points_modifier(src)
    if src_mod is not None:
        mod = point_display.add_points_modifier(obj, point_display.get_point_size(src) or 0.01)
        for item in src_mod.node_group.interface.items_tree:  # display mode, threshold, point size
            if (item.item_type == "SOCKET" and item.in_out == "INPUT" and item.socket_type != "NodeSocketGeometry"
                    and compat.has_modifier_input(src_mod, item.identifier)):
                compat.set_modifier_input(mod, item.identifier, compat.get_modifier_input(src_mod, item.identifier))
    for item in src.ov3r_scan.legend:
        new = obj.ov3r_scan.legend.add()
        new.name, new.label_id, new.points = item.name, item.label_id, item.points
        new["color"] = list(item.color)
    obj.ov3r_scan["display"] = src.ov3r_scan.get("display", 0)
    obj.ov3r_scan["threshold"] = src.ov3r_scan.threshold
    obj.ov3r_scan.query = src.ov3r_scan.query
    return obj


def split_by_label(src: bpy.types.Object, collection_name: str) -> list[bpy.types.Object]:
    """One object per label present (plus none for the unlabeled points)."""
    ids = point_attrs.read(src.data, scan_labels.LABEL_ATTR)
    names = scan_labels.label_names(src)
    if ids is None or not names:
        raise ValueError("Run Label All first: the scan has no labels")
    coll = bpy.data.collections.get(collection_name) or bpy.data.collections.new(collection_name)
    if coll.name not in {c.name for c in bpy.context.scene.collection.children_recursive}:
        bpy.context.scene.collection.children.link(coll)
    out = []
    for i, label in enumerate(names):
        mask = ids == i
        if mask.any():
            obj = subset_object(src, mask, f"{label}", coll)
            obj["ov3r_label"] = label
            out.append(obj)
    return out
