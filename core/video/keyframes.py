"""Keyframe selection driven by image motion: a new keyframe when the tracked features
have moved far enough from the last keyframe, or too few of them are still visible.

A 30 fps room video is mostly redundant; this is where the engine's speed comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import cv2
import numpy as np

from ..geometry.engine import Keyframe
from ..jobs import JobError
from .reader import Frame
from .tracks import TrackRecorder, TrackSettings, gray_at


#: a frame whose grey levels vary less than this (standard deviation) is blank: a lens cap, a flat wall
BLANK_STD = 2.0


@dataclass
class KeyframeSettings:
    # median feature displacement, as a fraction of the image diagonal; twice as dense as the sfm engine's views
    # (SfmEngine's view_stride 2), which ties its mapping together (0.06 before; docs/experiments/geometry.md)
    min_motion: float = 0.03
    min_overlap: float = 0.65  # fraction of the keyframe's features still tracked
    min_tracked: int = 0  # a keyframe when fewer features than this survive (denser where tracking weakens)
    max_keyframes: int = 120  # uniformly thinned past this
    track_side: int = 320  # tracking runs on grey images with this longest side
    min_keyframes: int = 3
    tracks: TrackSettings | None = field(default_factory=TrackSettings)  # point tracks for SfM (None: none)


@dataclass
class _TrackState:
    anchor: np.ndarray  # (K,2) feature positions in the last keyframe
    current: np.ndarray  # (K,2) the same features in the previous frame
    prev_gray: np.ndarray


def track_features(gray: np.ndarray) -> np.ndarray:
    pts = cv2.goodFeaturesToTrack(gray, maxCorners=300, qualityLevel=0.01, minDistance=7, blockSize=7)
    return np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2).astype(np.float32)


def motion_since_keyframe(state: _TrackState, gray: np.ndarray) -> tuple[float, float, _TrackState]:
    """Track the keyframe's features into ``gray``; return (median displacement in px,
    surviving fraction, new state)."""
    n0 = max(1, state.anchor.shape[0])
    if state.current.shape[0] == 0:
        return 0.0, 0.0, state
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(
        state.prev_gray, gray, state.current.reshape(-1, 1, 2), None, winSize=(21, 21), maxLevel=3
    )
    ok = status.reshape(-1).astype(bool)
    nxt = nxt.reshape(-1, 2)
    h, w = gray.shape
    ok &= (nxt[:, 0] >= 0) & (nxt[:, 0] < w) & (nxt[:, 1] >= 0) & (nxt[:, 1] < h)
    anchor, cur = state.anchor[ok], nxt[ok]
    disp = float(np.median(np.linalg.norm(cur - anchor, axis=1))) if len(cur) else 0.0
    return disp, len(cur) / n0, _TrackState(anchor, cur, gray)


def select_keyframes(
    frames: Iterable[Frame],
    settings: KeyframeSettings | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[list[Keyframe], int]:
    """Return (keyframes, number of frames read). Raises JobError for a one-frame video or
    a camera that does not move.

    Memory stays bounded on long videos: once ``2 * max_keyframes`` keyframes are held, every other one is
    dropped and from then on only every other candidate is kept (the stride doubles each time), so the kept
    ones stay evenly spread; a dropped keyframe's tracks join the next kept keyframe's, as in the final thinning.
    """
    st = settings or KeyframeSettings()
    keyframes: list[Keyframe] = []
    stride, candidates = 1, 0
    skipped: list[Keyframe] = []  # candidates not kept since the last kept keyframe (their tracks are handed on)
    state: _TrackState | None = None
    last: Frame | None = None
    last_was_key = False
    last_blank = False
    blank = 0
    n = 0
    recorder = TrackRecorder(st.tracks) if st.tracks is not None else None
    for frame in frames:
        n += 1
        if on_frame is not None:
            on_frame(n)
        gray = gray_at(frame.image, st.track_side)
        if recorder is not None:  # one grey image for both trackers when they work at the same size
            recorder.step(frame.image, gray if recorder.settings.side == st.track_side else None, frame.index)
        diag = float(np.hypot(*gray.shape))
        is_blank = float(gray.std()) < BLANK_STD
        blank += is_blank
        if state is None:
            take = True
        else:
            disp, overlap, state = motion_since_keyframe(state, gray)
            take = disp > st.min_motion * diag or overlap < st.min_overlap
            take |= len(state.current) < st.min_tracked and disp > 0.25 * st.min_motion * diag
            if is_blank:
                # The first blank frame of a run is kept, so the engine's failure to place it marks the
                # run as unplaced instead of interpolating across it; the rest of the run adds nothing.
                take = not last_blank
        last_blank = is_blank
        if take:
            kf = Keyframe(frame.image, frame.index, frame.timestamp,
                          recorder.keyframe() if recorder is not None else None)
            if candidates % stride == 0 or is_blank:  # a blank run's first frame marks the run as unplaced
                keyframes.append(_handed_on(skipped, kf))
                skipped = []
                if len(keyframes) >= 2 * st.max_keyframes:
                    if len(keyframes) % 2 == 0:  # the last one goes: its tracks wait for the next kept keyframe
                        skipped = [keyframes[-1]]
                    keyframes = _thin(keyframes, np.arange(0, len(keyframes), 2))
                    stride *= 2
            else:
                skipped.append(kf)
            candidates += 1
            pts = track_features(gray)
            state = _TrackState(pts, pts.copy(), gray)
        last, last_was_key = frame, take
    if n == 0:
        raise JobError("the video has no frames")
    if n == 1:
        raise JobError("the video has a single frame: a moving camera is needed to reconstruct a scene")
    if blank == n:
        raise JobError(f"all {n} frames of the video are blank (one flat colour): there is nothing to reconstruct")
    # Close the path with the last frame when it moved a little since the last keyframe (or was a candidate).
    if skipped and last is not None and skipped[-1].index == last.index:
        keyframes.append(_handed_on(skipped[:-1], skipped[-1]))
    elif last is not None and not last_was_key and state is not None:
        moved = np.median(np.linalg.norm(state.current - state.anchor, axis=1)) if len(state.current) else 0.0
        if moved > 0.5 * st.min_motion * float(np.hypot(*state.prev_gray.shape)):
            keyframes.append(_handed_on(skipped, Keyframe(last.image, last.index, last.timestamp,
                                                          recorder.keyframe() if recorder is not None else None)))
    if len(keyframes) < st.min_keyframes:
        raise JobError(
            f"the camera hardly moves in this video ({n} frames gave {len(keyframes)} distinct views): "
            "walk or pan around the room while filming"
        )
    if len(keyframes) > st.max_keyframes:
        keep = np.unique(np.round(np.linspace(0, len(keyframes) - 1, st.max_keyframes)).astype(int))
        keyframes = _thin(keyframes, keep)
    return keyframes, n


def _handed_on(skipped: list[Keyframe], kf: Keyframe) -> Keyframe:
    """``kf`` with the tracked frames of the keyframes ``skipped`` before it prepended to its ``between``."""
    frames = [f for k in skipped for f in k.tracked_frames()]
    if not frames or kf.tracks is None:
        return kf
    return replace(kf, tracks=replace(kf.tracks, between=frames + kf.tracks.between))


def _thin(keyframes: list[Keyframe], keep: np.ndarray) -> list[Keyframe]:
    """The keyframes at ``keep`` (increasing); the tracks of each dropped keyframe and of the frames
    around it join the next kept keyframe's ``between``, so no tracked frame is lost."""
    out: list[Keyframe] = []
    skipped: list[Keyframe] = []
    kept = set(keep.tolist())
    for i, kf in enumerate(keyframes):
        if i not in kept:
            skipped.append(kf)
            continue
        out.append(_handed_on(skipped, kf))
        skipped = []
    return out
