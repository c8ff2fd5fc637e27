"""A text query applied to an Ov3R points object: per-segment scores (numpy, from the
stored descriptors), the ``query_score`` FLOAT point attribute, the selection of the points
at or above the threshold, and the live counts the sidebar shows.

The last query lives in ``obj["_ov3r_query"]`` (text, per-segment scores, points per
segment), so the threshold slider and the counts need no per-point work and survive
save / reopen.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import blend_storage, point_attrs, point_display
from .query_scores import NO_SCORE, per_point, segment_scores

QUERY_KEY = "_ov3r_query"
SCORE_ATTR = point_display.SCORE_ATTR

_desc_cache: dict[tuple, np.ndarray] = {}


class ScanError(ValueError):
    """The object cannot answer a query; the message is for the user."""


def check_scan(obj: bpy.types.Object | None) -> dict:
    info = blend_storage.info(obj)
    if info is None:
        raise ScanError("The active object is not an Ov3R scan (import a video or an Ov3R scene first)")
    if blend_storage.SEGMENTS_KEY not in obj.keys() or int(obj[blend_storage.SEGMENTS_KEY]["count"]) == 0:
        raise ScanError(f"{obj.name!r} has no semantic segments to query (it was reconstructed without semantics)")
    space = str(blend_storage.read_metadata(obj).get("text_space") or "")
    if space.startswith("open_clip:"):
        raise ScanError(f"{obj.name!r} was labelled in the {space} space; the sidebar's query worker speaks "
                        "all-MiniLM-L6-v2 only (query it with 'ov3r query' on the command line)")
    return info


def descriptors(obj: bpy.types.Object) -> np.ndarray:
    """(S,D) float32 segment descriptors (parsed once per object and table)."""
    g = obj[blend_storage.SEGMENTS_KEY]
    arr = g["descriptor"]
    key = (obj.session_uid, int(g["count"]), int(g["descriptor_dim"]), tuple(arr[:8]), tuple(arr[-8:]))
    hit = _desc_cache.get(key)
    if hit is None:
        s, d = int(g["count"]), int(g["descriptor_dim"])
        hit = np.asarray(arr, np.float32).reshape(s, d)
        _desc_cache.clear()
        _desc_cache[key] = hit
    return hit


def forget_cache() -> None:
    _desc_cache.clear()


def segment_ids(obj: bpy.types.Object) -> np.ndarray:
    seg = point_attrs.read(obj.data, "segment_id")
    return np.full(len(obj.data.vertices), -1, np.int32) if seg is None else seg


def apply_query(obj: bpy.types.Object, text: str, text_emb: np.ndarray, threshold: float,
                select: bool = True) -> tuple[int, int]:
    """Score, store and (optionally) select; returns (matching points, matching segments)."""
    scores = segment_scores(descriptors(obj), text_emb)  # raises DimensionMismatch before any change
    seg = segment_ids(obj)
    counts = np.bincount(seg[seg >= 0], minlength=len(scores))[: len(scores)]
    obj[QUERY_KEY] = {"text": text, "segment_scores": scores.astype(np.float32), "segment_points":
                      counts.astype(np.int32)}
    point_attrs.write(obj.data, SCORE_ATTR, "FLOAT", per_point(scores, seg, NO_SCORE))
    if select:
        point_attrs.set_selection(obj.data, per_point(scores >= threshold, seg, False))
    point_display.set_display(obj, "SCORE", threshold)
    obj.data.update_tag()
    obj.update_tag()
    return match_counts(obj, threshold)


def last_query(obj: bpy.types.Object | None) -> dict | None:
    if obj is None or QUERY_KEY not in obj.keys():
        return None
    g = obj[QUERY_KEY]
    return {"text": str(g["text"]), "segment_scores": np.asarray(g["segment_scores"], np.float32),
            "segment_points": np.asarray(g["segment_points"], np.int64)}


def match_counts(obj: bpy.types.Object, threshold: float) -> tuple[int, int]:
    """(points, segments) at or above ``threshold`` for the last query: no per-point work."""
    q = last_query(obj)
    if q is None:
        return 0, 0
    hit = q["segment_scores"] >= threshold
    return int(q["segment_points"][hit].sum()), int(hit.sum())


def match_mask(obj: bpy.types.Object, threshold: float) -> np.ndarray:
    q = last_query(obj)
    if q is None:
        raise ScanError("Run a query first (type what to look for and press Select)")
    return per_point(q["segment_scores"] >= threshold, segment_ids(obj), False)


def set_threshold(obj: bpy.types.Object, threshold: float, select: bool = True) -> None:
    """The slider moved: greying in the viewport follows (a modifier input); selection too."""
    if last_query(obj) is None:
        return
    point_display.set_display(obj, "SCORE", threshold)
    if select:
        point_attrs.set_selection(obj.data, match_mask(obj, threshold))
    obj.data.update_tag()
    obj.update_tag()
