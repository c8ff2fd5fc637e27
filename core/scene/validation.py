"""Shape / dtype / range checks for SemanticScene (every failure is a SceneFormatError)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .format import FORMAT_NAME, FORMAT_VERSION, SceneFormatError
from .frame_path import STATUS_NAMES

if TYPE_CHECKING:
    from .frame_path import FramePath
    from .semantic_scene import SemanticScene


def _check(arr: np.ndarray, name: str, shape: tuple, kinds: str) -> None:
    if not isinstance(arr, np.ndarray):
        raise SceneFormatError(f"'{name}' must be a numpy array, got {type(arr).__name__}")
    if arr.dtype.kind not in kinds:
        raise SceneFormatError(f"'{name}' has dtype {arr.dtype}, expected kind {kinds!r}")
    if arr.ndim != len(shape):
        raise SceneFormatError(f"'{name}' has shape {arr.shape}, expected {len(shape)} dimensions {shape}")
    for got, want in zip(arr.shape, shape):
        if want is not None and got != want:
            raise SceneFormatError(f"'{name}' has shape {arr.shape}, expected {shape}")


def validate_scene(scene: "SemanticScene") -> None:
    meta = scene.metadata
    if meta.get("format") != FORMAT_NAME:
        raise SceneFormatError(f"not an Ov3R scene (format {meta.get('format')!r})")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise SceneFormatError(
            f"unsupported SemanticScene version {version!r}; this build reads versions 1..{FORMAT_VERSION}"
        )
    n = scene.points.shape[0] if isinstance(scene.points, np.ndarray) else -1
    _check(scene.points, "points", (None, 3), "f")
    _check(scene.colors, "colors", (n, 3), "u")
    _check(scene.confidence, "confidence", (n,), "f")
    _check(scene.segment_id, "segment_id", (n,), "i")
    _check(scene.frame_id, "frame_id", (n,), "i")
    if n and not np.isfinite(scene.points).all():
        raise SceneFormatError("'points' contains NaN or infinite values")

    cams = scene.cameras
    m = cams.world_from_camera.shape[0]
    _check(cams.intrinsics, "cameras.intrinsics", (m, 3, 3), "f")
    _check(cams.world_from_camera, "cameras.world_from_camera", (m, 4, 4), "f")
    _check(cams.timestamps, "cameras.timestamps", (m,), "f")
    _check(cams.frame_index, "cameras.frame_index", (m,), "i")
    if len(cams.image_size) != 2:
        raise SceneFormatError(f"'cameras.image_size' must be (W, H), got {cams.image_size!r}")
    if n and m and (scene.frame_id.min() < 0 or scene.frame_id.max() >= m):
        raise SceneFormatError(f"'frame_id' out of range for {m} cameras")

    if scene.frame_path is not None:
        _check_frame_path(scene.frame_path)

    segs = scene.segments
    s = segs.point_count.shape[0]
    _check(segs.descriptor, "segments.descriptor", (s, None), "f")
    _check(segs.point_count, "segments.point_count", (s,), "i")
    _check(segs.centroid, "segments.centroid", (s, 3), "f")
    _check(segs.box_center, "segments.box_center", (s, 3), "f")
    _check(segs.box_axes, "segments.box_axes", (s, 3, 3), "f")
    _check(segs.box_extent, "segments.box_extent", (s, 3), "f")
    _check(segs.score, "segments.score", (s,), "f")
    if len(segs.label) != s:
        raise SceneFormatError(f"'segments.label' has {len(segs.label)} entries for {s} segments")
    if n and scene.segment_id.max(initial=-1) >= s:
        raise SceneFormatError(f"'segment_id' refers to segment {int(scene.segment_id.max())} but only {s} exist")
    if n and scene.segment_id.min(initial=-1) < -1:
        raise SceneFormatError("'segment_id' has values below -1")


def _check_frame_path(path: "FramePath") -> None:
    cams = path.cameras
    f = cams.world_from_camera.shape[0] if isinstance(cams.world_from_camera, np.ndarray) else -1
    _check(cams.intrinsics, "frame_path.intrinsics", (f, 3, 3), "f")
    _check(cams.world_from_camera, "frame_path.world_from_camera", (f, 4, 4), "f")
    _check(cams.timestamps, "frame_path.timestamps", (f,), "f")
    _check(cams.frame_index, "frame_path.frame_index", (f,), "i")
    _check(path.status, "frame_path.status", (f,), "u")
    if f and not np.isin(path.status, list(STATUS_NAMES)).all():
        raise SceneFormatError(f"'frame_path.status' holds values other than {sorted(STATUS_NAMES)}")
    if f and not np.isfinite(cams.world_from_camera).all():
        raise SceneFormatError("'frame_path.world_from_camera' contains NaN or infinite values")
