"""SemanticScene file format: one ``.npz`` (uncompressed, so it memory-maps fast) with
arrays plus a JSON metadata string under the key ``__meta__``.

Keys: points colors confidence segment_id frame_id, cam_intrinsics cam_world_from_camera
cam_timestamps cam_frame_index cam_image_size, seg_descriptor seg_point_count seg_centroid
seg_box_center seg_box_axes seg_box_extent seg_score; when the scene has a frame path,
path_intrinsics path_world_from_camera path_timestamps path_frame_index path_status; and ``__meta__`` (JSON, with
"segment_labels" holding segments.label).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .semantic_scene import FORMAT_NAME, Cameras, FramePath, SceneFormatError, Segments, SemanticScene

SUFFIX = ".ov3r.npz"


def save_scene(scene: SemanticScene, path: str | os.PathLike) -> Path:
    """Validate and write atomically (a reader never sees a half-written file)."""
    scene.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(scene.metadata)
    meta["segment_labels"] = list(scene.segments.label)
    arrays = {
        "points": scene.points,
        "colors": scene.colors,
        "confidence": scene.confidence,
        "segment_id": scene.segment_id,
        "frame_id": scene.frame_id,
        "cam_intrinsics": scene.cameras.intrinsics,
        "cam_world_from_camera": scene.cameras.world_from_camera,
        "cam_timestamps": scene.cameras.timestamps,
        "cam_frame_index": scene.cameras.frame_index,
        "cam_image_size": np.asarray(scene.cameras.image_size, np.int32),
        "seg_descriptor": scene.segments.descriptor,
        "seg_point_count": scene.segments.point_count,
        "seg_centroid": scene.segments.centroid,
        "seg_box_center": scene.segments.box_center,
        "seg_box_axes": scene.segments.box_axes,
        "seg_box_extent": scene.segments.box_extent,
        "seg_score": scene.segments.score,
        "__meta__": np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8),
    }
    if scene.frame_path is not None:
        fp = scene.frame_path
        arrays.update({"path_intrinsics": fp.cameras.intrinsics, "path_world_from_camera": fp.cameras.world_from_camera,
                       "path_timestamps": fp.cameras.timestamps, "path_frame_index": fp.cameras.frame_index,
                       "path_status": fp.status})
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_scene(path: str | os.PathLike) -> SemanticScene:
    """Load and validate; any problem becomes one SceneFormatError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SceneFormatError(f"{path}: no such scene file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise SceneFormatError(f"{path}: not an Ov3R scene file ({exc.__class__.__name__}: {exc})") from None
    if "__meta__" not in data:
        raise SceneFormatError(f"{path}: not an Ov3R scene file (no metadata)")
    try:
        meta = json.loads(data["__meta__"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneFormatError(f"{path}: corrupt metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise SceneFormatError(f"{path}: not an Ov3R scene file")
    try:
        labels = [str(x) for x in meta.pop("segment_labels", [])]
        size = data["cam_image_size"]
        scene = SemanticScene(
            points=data["points"],
            colors=data["colors"],
            confidence=data["confidence"],
            segment_id=data["segment_id"],
            frame_id=data["frame_id"],
            cameras=Cameras(
                data["cam_intrinsics"],
                data["cam_world_from_camera"],
                data["cam_timestamps"],
                data["cam_frame_index"],
                (int(size[0]), int(size[1])),
            ),
            segments=Segments(
                data["seg_descriptor"],
                data["seg_point_count"],
                data["seg_centroid"],
                data["seg_box_center"],
                data["seg_box_axes"],
                data["seg_box_extent"],
                labels,
                data["seg_score"],
            ),
            metadata=meta,
            frame_path=None if "path_status" not in data else FramePath(
                Cameras(data["path_intrinsics"], data["path_world_from_camera"], data["path_timestamps"],
                        data["path_frame_index"], (int(size[0]), int(size[1]))),
                data["path_status"]),
        )
    except KeyError as exc:
        raise SceneFormatError(f"{path}: missing array {exc.args[0]!r}") from None
    except (IndexError, TypeError) as exc:
        raise SceneFormatError(f"{path}: malformed array ({exc})") from None
    try:
        return scene.validate()
    except SceneFormatError as exc:
        raise SceneFormatError(f"{path}: {exc}") from None
