"""The geometry-engine interface: keyframes in, a fused coloured cloud + cameras out.

Both the classical ``sfm`` engine and the learned ``clip3r`` engine implement it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..jobs import JobContext
from ..scene import Cameras


@dataclass
class KeyframeTracks:
    """Point tracks seen in one keyframe (made by :mod:`core.video.tracks`).

    ids: (N,) int64 track ids, unique within the video: the same id in two keyframes is a correspondence.
    xy:  (N,2) float32 positions in the keyframe image's pixels (OpenCV: pixel centres at integers).
    between: the tracks of the frames after the previous keyframe and before this one, in order
             (when the recorder keeps them).
    """

    ids: np.ndarray
    xy: np.ndarray
    between: list[FrameTracks] = field(default_factory=list)


@dataclass
class FrameTracks:
    """The tracks seen in one frame that is not a keyframe: an engine with 3D points for the track ids
    can register the frame itself instead of interpolating its camera.

    index: the frame's index among all decoded frames.
    ids:   (N,) int64 track ids; xy: (N,2) float32 positions in the frame's pixels at the keyframes' size.
    """

    index: int
    ids: np.ndarray
    xy: np.ndarray


@dataclass
class Keyframe:
    """One selected video frame.

    image:      (H,W,3) uint8 RGB, already rotated upright and resized to the working size.
    index:      index of the frame among all decoded frames.
    timestamp:  seconds from the start of the video.
    tracks:     corners tracked through every frame up to this one (ids + positions in ``image``),
                correspondences between keyframes for engines that use them; None when not tracked.
    """

    image: np.ndarray
    index: int
    timestamp: float
    tracks: KeyframeTracks | None = None

    def tracked_frames(self) -> list[FrameTracks]:
        """The tracks of the frames since the previous keyframe and of this one, in order ([] untracked)."""
        if self.tracks is None:
            return []
        return self.tracks.between + [FrameTracks(self.index, self.tracks.ids, self.tracks.xy)]


@dataclass
class Reconstruction:
    """Output of a geometry engine.

    points:     (N,3) float32 world coordinates
    colors:     (N,3) uint8
    confidence: (N,) float32 in [0,1]
    frame_id:   (N,) int32 index into ``cameras`` (keyframe of first observation)
    cameras:    registered keyframes only, OpenCV convention, world_from_camera
    extras:     engine specific (e.g. per-keyframe depth maps, CLIP3R features)
    """

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    frame_id: np.ndarray
    cameras: Cameras
    extras: dict[str, Any] = field(default_factory=dict)


class GeometryEngine(Protocol):
    name: str

    def reconstruct(
        self,
        keyframes: list[Keyframe],
        ctx: JobContext,
        intrinsics: np.ndarray | None = None,
    ) -> Reconstruction:
        """Reconstruct ``keyframes``; ``intrinsics`` (3,3) in working-size pixels when known.

        Calls ``ctx.progress(stage, done, total)`` often, ``ctx.partial(scene)`` with a
        SemanticScene of what is reconstructed so far, and raises JobError with a
        user-facing message when the input cannot be reconstructed.
        """
        ...
