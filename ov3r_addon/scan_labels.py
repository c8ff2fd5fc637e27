"""Label All: every segment takes the vocabulary word its descriptor is closest to (or none
under the threshold); points get ``label_id`` (INT, -1 = none) and ``label_color``
(FLOAT_COLOR, what the "Label" display shows); the legend and the segment table's labels
and scores are updated, so proxies and exports are named by label."""

from __future__ import annotations

import json

import bpy
import numpy as np

from . import blend_storage, point_attrs, point_display
from .query_scores import label_segments, palette, per_point
from .scan_query import descriptors, segment_ids

LABELS_KEY = "_ov3r_labels"
LABEL_ATTR = "label_id"
UNLABELED_COLOR = (0.05, 0.05, 0.05)


def apply_labels(obj: bpy.types.Object, vocabulary: list[str], vocab_emb: np.ndarray, threshold: float) -> np.ndarray:
    """Returns the points per label (V,)."""
    seg_label, seg_score = label_segments(descriptors(obj), vocab_emb, threshold)
    seg = segment_ids(obj)
    point_label = per_point(seg_label, seg, np.int32(-1)).astype(np.int32)
    colors = palette(len(vocabulary))
    point_attrs.write(obj.data, LABEL_ATTR, "INT", point_label)
    counts = np.bincount(point_label[point_label >= 0], minlength=len(vocabulary))
    obj[LABELS_KEY] = {"names_json": json.dumps(vocabulary, ensure_ascii=False), "colors": colors.ravel(),
                       "threshold": float(threshold), "counts": counts.astype(np.int32)}
    write_label_colors(obj)
    # Segment table: labels + scores (proxies and exports use them).
    g = obj[blend_storage.SEGMENTS_KEY]
    g["labels_json"] = json.dumps([vocabulary[i] if i >= 0 else "" for i in seg_label], ensure_ascii=False)
    g["score"] = np.where(seg_label >= 0, seg_score, 0.0).astype(np.float32)
    scan = getattr(obj, "ov3r_scan", None)
    if scan is not None:
        scan.legend.clear()
        for i, name in enumerate(vocabulary):
            item = scan.legend.add()
            item.name, item.label_id, item.points = name, i, int(counts[i])
            item["color"] = [float(c) for c in colors[i]]  # no update callback per item
    point_display.set_display(obj, "LABEL")
    obj.data.update_tag()
    obj.update_tag()
    return counts


def label_names(obj: bpy.types.Object) -> list[str]:
    return json.loads(obj[LABELS_KEY]["names_json"]) if obj is not None and LABELS_KEY in obj.keys() else []


def label_colors(obj: bpy.types.Object) -> np.ndarray:
    names = label_names(obj)
    return np.asarray(obj[LABELS_KEY]["colors"], np.float32).reshape(len(names), 3) if names else np.zeros((0, 3))


def write_label_colors(obj: bpy.types.Object) -> None:
    """``label_color`` from ``label_id`` and the legend's colours."""
    ids = point_attrs.read(obj.data, LABEL_ATTR)
    if ids is None:
        return
    table = np.vstack([label_colors(obj), np.asarray(UNLABELED_COLOR, np.float32)[None]])
    rgba = np.ones((len(ids), 4), np.float32)
    rgba[:, :3] = table[ids]
    point_attrs.write(obj.data, point_display.LABEL_COLOR_ATTR, "FLOAT_COLOR", rgba)


def set_label_color(obj: bpy.types.Object, label_id: int, color: tuple[float, float, float]) -> None:
    colors = label_colors(obj)
    if 0 <= label_id < len(colors):
        colors[label_id] = color
        obj[LABELS_KEY]["colors"] = colors.ravel()
        write_label_colors(obj)
        obj.data.update_tag()
        obj.update_tag()
