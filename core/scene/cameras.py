"""Cameras: intrinsics and poses of a set of video frames (the keyframes, or every frame).

OpenCV convention: x right, y down, z forward; ``world_from_camera`` maps camera coordinates to
world coordinates (4x4, row-major, last row 0 0 0 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
