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

from .cameras import Cameras
from .format import FORMAT_NAME, FORMAT_VERSION, SceneFormatError
from .frame_path import FramePath
from .validation import validate_scene

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "SceneFormatError", "Cameras", "FramePath", "Segments", "SemanticScene"]


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
    """Points (N), cameras (M keyframes), segments (S), a camera per video frame (F) and metadata.

    points:     (N,3) float32
    colors:     (N,3) uint8 RGB
    confidence: (N,) float32, higher is better, in [0, 1]
    segment_id: (N,) int32, -1 = none
    frame_id:   (N,) int32, keyframe of first observation (index into cameras)
    frame_path: every decoded frame's camera and how it was placed (None in partial scenes and
                in files written before it existed)
    """

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    segment_id: np.ndarray
    frame_id: np.ndarray
    cameras: Cameras
    segments: Segments = field(default_factory=Segments.empty)
    metadata: dict[str, Any] = field(default_factory=dict)
    frame_path: FramePath | None = None

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
        validate_scene(self)
        return self
