"""Everything of a SemanticScene that is not a point attribute, stored as custom
properties on the points object so that saving and reopening the .blend loses nothing.

* ``obj["ov3r"]``          visible summary: kind, video / scene file paths, engine,
                           counts, the camera's name and ``metadata`` as a JSON string.
* ``obj["_ov3r_segments"]``  the segment table (descriptors as float arrays + shape,
                           labels as JSON); hidden from the UI by the leading underscore.
* ``obj["_ov3r_cameras"]``   the keyframe cameras (intrinsics, poses, timestamps).
"""

from __future__ import annotations

import json
from typing import Any

import bpy
import numpy as np

from ..core.scene import Cameras, Segments, SemanticScene
from .point_cloud import read_points

INFO_KEY = "ov3r"
SEGMENTS_KEY = "_ov3r_segments"
CAMERAS_KEY = "_ov3r_cameras"
STORAGE_VERSION = 1


def _flat(arr: np.ndarray, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(arr, dtype).ravel()


def _arr(group: Any, key: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(group[key], dtype).reshape(shape)


def store_info(obj: bpy.types.Object, scene: SemanticScene, video_path: str, scene_path: str,
               camera_name: str, partial: bool) -> None:
    obj[INFO_KEY] = {
        "kind": "points",
        "storage_version": STORAGE_VERSION,
        "video_path": video_path,
        "scene_path": scene_path,
        "engine": str(scene.metadata.get("engine", "")),
        "point_count": len(scene),
        "keyframes": len(scene.cameras),
        "segments": len(scene.segments),
        "camera": camera_name,
        "partial": bool(partial),
        "metadata": json.dumps(scene.metadata, ensure_ascii=False, default=str),
    }


def store_tables(obj: bpy.types.Object, scene: SemanticScene) -> None:
    seg, cams = scene.segments, scene.cameras
    obj[SEGMENTS_KEY] = {
        "count": len(seg),
        "descriptor_dim": int(seg.descriptor.shape[1]),
        "descriptor": _flat(seg.descriptor, np.float32),
        "point_count": _flat(seg.point_count, np.int32),
        "centroid": _flat(seg.centroid, np.float32),
        "box_center": _flat(seg.box_center, np.float32),
        "box_axes": _flat(seg.box_axes, np.float32),
        "box_extent": _flat(seg.box_extent, np.float32),
        "score": _flat(seg.score, np.float32),
        "labels_json": json.dumps(list(seg.label), ensure_ascii=False),
    }
    obj[CAMERAS_KEY] = {
        "count": len(cams),
        "intrinsics": _flat(cams.intrinsics, np.float32),
        "world_from_camera": _flat(cams.world_from_camera, np.float32),
        "timestamps": _flat(cams.timestamps, np.float64),
        "frame_index": _flat(cams.frame_index, np.int32),
        "image_size": [int(cams.image_size[0]), int(cams.image_size[1])],
    }


def info(obj: bpy.types.Object | None) -> dict[str, Any] | None:
    """The summary dict of an Ov3R points object, or None for any other object."""
    if obj is None or INFO_KEY not in obj.keys():
        return None
    try:
        data = obj[INFO_KEY].to_dict()
    except AttributeError:
        return None
    return data if data.get("kind") == "points" else None


def read_metadata(obj: bpy.types.Object) -> dict[str, Any]:
    data = info(obj) or {}
    return json.loads(data.get("metadata") or "{}")


def read_segments(obj: bpy.types.Object) -> Segments:
    g = obj[SEGMENTS_KEY]
    s, d = int(g["count"]), int(g["descriptor_dim"])
    return Segments(
        descriptor=_arr(g, "descriptor", np.float32, (s, d)),
        point_count=_arr(g, "point_count", np.int32, (s,)),
        centroid=_arr(g, "centroid", np.float32, (s, 3)),
        box_center=_arr(g, "box_center", np.float32, (s, 3)),
        box_axes=_arr(g, "box_axes", np.float32, (s, 3, 3)),
        box_extent=_arr(g, "box_extent", np.float32, (s, 3)),
        label=[str(x) for x in json.loads(g["labels_json"])],
        score=_arr(g, "score", np.float32, (s,)),
    )


def read_cameras(obj: bpy.types.Object) -> Cameras:
    g = obj[CAMERAS_KEY]
    m = int(g["count"])
    size = [int(x) for x in g["image_size"]]
    return Cameras(
        intrinsics=_arr(g, "intrinsics", np.float32, (m, 3, 3)),
        world_from_camera=_arr(g, "world_from_camera", np.float32, (m, 4, 4)),
        timestamps=_arr(g, "timestamps", np.float64, (m,)),
        frame_index=_arr(g, "frame_index", np.int32, (m,)),
        image_size=(size[0], size[1]),
    )


def scene_from_object(obj: bpy.types.Object) -> SemanticScene:
    """Rebuild the SemanticScene from an object built by scene_builder (e.g. after reopening)."""
    arrays = read_points(obj.data)
    return SemanticScene(
        points=arrays["points"],
        colors=arrays["colors"],
        confidence=arrays["confidence"],
        segment_id=arrays["segment_id"],
        frame_id=arrays["frame_id"],
        cameras=read_cameras(obj),
        segments=read_segments(obj),
        metadata=read_metadata(obj),
    ).validate()
