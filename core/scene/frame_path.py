"""A camera for every decoded video frame, and how each one was placed.

An engine registers some keyframes; the frames in between get cameras interpolated from their
registered neighbours. ``status`` says which is which, so nothing downstream mistakes an
interpolated or unplaced frame for a measured one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cameras import Cameras

#: the engine registered this frame (a keyframe with a recovered pose)
REGISTERED = 0
#: between two consecutive registered keyframes: interpolated, trusted as much as its neighbours
INTERPOLATED = 1
#: a keyframe around it failed: the pose is held / bridged from the nearest registered frames, unreliable
UNPLACED = 2

STATUS_NAMES = {REGISTERED: "registered", INTERPOLATED: "interpolated", UNPLACED: "unplaced"}


@dataclass
class FramePath:
    """Per video frame cameras.

    cameras: F cameras; ``cameras.frame_index`` is 0..F-1 and ``cameras.timestamps`` the frames' times.
    status:  (F,) uint8, one of REGISTERED, INTERPOLATED, UNPLACED.
    """

    cameras: Cameras
    status: np.ndarray

    def __len__(self) -> int:
        return len(self.cameras)

    def placed(self) -> np.ndarray:
        """(F,) bool: registered or interpolated between registered keyframes."""
        return self.status != UNPLACED

    def coverage(self) -> float:
        """Fraction of the video's frames (= of its time, at a constant frame rate) that are placed."""
        return float(self.placed().mean()) if len(self) else 0.0

    def unplaced_ranges(self) -> list[tuple[int, int]]:
        """Inclusive (first, last) frame indices of each run of unplaced frames, in video order."""
        bad = np.concatenate([[False], ~self.placed(), [False]])
        edges = np.flatnonzero(np.diff(bad.astype(np.int8)))
        return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]
