"""SemanticScene: the one data type that crosses core -> worker -> Blender -> file.

Conventions
-----------
* Units are metres (or an arbitrary but consistent unit before scale is set).
* Cameras use the OpenCV convention: x right, y down, z forward. ``world_from_camera``
  maps camera coordinates to world coordinates (4x4, row-major, last row 0 0 0 1).
* ``segment_id == -1`` means "no segment"; ``frame_id`` is the index into ``cameras``
  of the keyframe that first observed the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT_NAME = "ov3r.semantic_scene"
FORMAT_VERSION = 1


class SceneFormatError(ValueError):
    """A file or object is not a valid SemanticScene (one clear message, never a crash)."""


@dataclass
class Cameras:
    """Per-keyframe cameras.

    intrinsics:        (M,3,3) float32 pinhole K in pixels of an image of ``image_size``.
    world_from_camera: (M,4,4) float32, OpenCV camera axes.
    timestamps:        (M,) float64 seconds in the video.
    frame_index:       (M,) int32 index of the decoded frame in the video.
    image_size:        (W, H) of the images the intrinsics refer to.
    """

    intrinsics: np.ndarray
    world_from_camera: np.ndarray
    timestamps: np.ndarray
    frame_index: np.ndarray
    image_size: tuple[int, int]

    @staticmethod
    def empty(image_size: tuple[int, int] = (0, 0)) -> "Cameras":
        return Cameras(
            np.zeros((0, 3, 3), np.float32),
            np.zeros((0, 4, 4), np.float32),
            np.zeros((0,), np.float64),
            np.zeros((0,), np.int32),
            image_size,
        )

    def __len__(self) -> int:
        return int(self.world_from_camera.shape[0])

    def centers(self) -> np.ndarray:
        """(M,3) camera centres in world coordinates."""
        return self.world_from_camera[:, :3, 3].copy()


@dataclass
class Segments:
    """Per 3D segment data (S segments; row i describes segment_id == i).

    descriptor:  (S,D) float32 in the text-embedding space named by metadata["text_space"].
    point_count: (S,) int32.
    centroid:    (S,3) float32.
    box_center:  (S,3) float32, box_axes (S,3,3) float32 rows are unit axes,
    box_extent:  (S,3) float32 full side lengths along those axes.
    label:       list[str] of length S ("" when no vocabulary was given).
    score:       (S,) float32 score of that label.
    """

    descriptor: np.ndarray
    point_count: np.ndarray
    centroid: np.ndarray
    box_center: np.ndarray
    box_axes: np.ndarray
    box_extent: np.ndarray
    label: list[str]
    score: np.ndarray

    @staticmethod
    def empty(dim: int = 0) -> "Segments":
        return Segments(
            np.zeros((0, dim), np.float32),
            np.zeros((0,), np.int32),
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3, 3), np.float32),
            np.zeros((0, 3), np.float32),
            [],
            np.zeros((0,), np.float32),
        )

    def __len__(self) -> int:
        return int(self.point_count.shape[0])


@dataclass
class SemanticScene:
    """Points (N), cameras (M keyframes), segments (S) and metadata.

    points:     (N,3) float32
    colors:     (N,3) uint8 RGB
    confidence: (N,) float32, higher is better, in [0, 1]
    segment_id: (N,) int32, -1 = none
    frame_id:   (N,) int32, keyframe of first observation (index into cameras)
    """

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    segment_id: np.ndarray
    frame_id: np.ndarray
    cameras: Cameras
    segments: Segments = field(default_factory=Segments.empty)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metadata.setdefault("format", FORMAT_NAME)
        self.metadata.setdefault("version", FORMAT_VERSION)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @staticmethod
    def from_points(
        points: np.ndarray,
        colors: np.ndarray,
        confidence: np.ndarray | None = None,
        frame_id: np.ndarray | None = None,
        cameras: Cameras | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> "SemanticScene":
        n = int(points.shape[0])
        return SemanticScene(
            points=np.ascontiguousarray(points, np.float32),
            colors=np.ascontiguousarray(colors, np.uint8),
            confidence=np.ones(n, np.float32) if confidence is None else np.asarray(confidence, np.float32),
            segment_id=np.full(n, -1, np.int32),
            frame_id=np.zeros(n, np.int32) if frame_id is None else np.asarray(frame_id, np.int32),
            cameras=cameras if cameras is not None else Cameras.empty(),
            metadata=dict(metadata or {}),
        )

    def validate(self) -> "SemanticScene":
        """Check shapes, dtypes and index ranges; raise SceneFormatError with one clear message."""
        from .validation import validate_scene

        validate_scene(self)
        return self
