"""Corner tracks through every decoded frame, kept for the keyframes: correspondences that SfM can use
where descriptor matching between keyframes fails (flat shading, repeated texture, light changes, wide
baselines between keyframes that the frames in between bridge in small steps).

Pyramidal Lucas-Kanade (OpenCV) between consecutive frames, the newer frame's grey levels matched in
mean and spread to the older one's so that a global light change does not break brightness constancy.
Two checks drop drifting or jumping points: forward-backward between consecutive frames, and at every
keyframe a second track straight from the previous keyframe that must agree with the frame-by-frame one. New corners are added at keyframes where the
image has room for them and real structure (an absolute corner strength, so render noise on a blank
wall is not tracked); each track keeps its id for as long as it lives.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry.engine import FrameTracks, KeyframeTracks


def gray_at(image: np.ndarray, side: int) -> np.ndarray:
    """(H,W,3) uint8 RGB -> grey uint8, shrunk so its longest side is at most ``side``."""
    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(g, (max(8, int(w * s)), max(8, int(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else g


@dataclass
class TrackSettings:
    max_points: int = 600  # corners alive at once
    side: int = 320  # tracking runs on grey images with at most this longest side
    min_distance: int = 6  # px between corners (at the tracking size)
    quality: float = 0.003  # corner quality relative to the frame's best (OpenCV goodFeaturesToTrack)
    window: int = 15  # Lucas-Kanade window (px)
    levels: int = 3  # pyramid levels above the base
    max_fb_error: float = 0.7  # px: frame-by-frame and straight-from-the-keyframe tracking must agree this well
    frame_check: bool = True  # also a forward-backward check between consecutive frames
    min_eigenvalue: float = 1e-4  # OpenCV cornerMinEigenVal (7x7 block): below it a "corner" is noise
    keep_frames: bool = True  # keep every frame's tracks (``KeyframeTracks.between``) so SfM can register it


def structure_corners(gray: np.ndarray, settings: TrackSettings, max_corners: int,
                      taken: np.ndarray | None = None) -> np.ndarray:
    """(N,2) float32 corners of grey ``gray`` (H,W) uint8 with real structure: above an absolute corner strength
    (``settings.min_eigenvalue``), so render or sensor noise on a plain wall gives none, at least
    ``settings.min_distance`` px from each other and from the points ``taken`` (M,2), at most ``max_corners``."""
    mask = np.where(cv2.cornerMinEigenVal(gray, 7, 3) >= settings.min_eigenvalue, 255, 0).astype(np.uint8)
    for x, y in (() if taken is None else taken):
        cv2.circle(mask, (int(x), int(y)), settings.min_distance, 0, -1)
    new = cv2.goodFeaturesToTrack(gray, maxCorners=max_corners, qualityLevel=settings.quality,
                                  minDistance=settings.min_distance, blockSize=7, mask=mask)
    return np.zeros((0, 2), np.float32) if new is None else new.reshape(-1, 2).astype(np.float32)


def _gain_matched(gray: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(H,W) uint8 ``gray`` with its mean and standard deviation mapped onto ``ref``'s (clipped)."""
    g = gray.astype(np.float32)
    std = float(g.std())
    if std < 1e-3:
        return gray
    return np.clip((g - float(g.mean())) * (float(ref.std()) / std) + float(ref.mean()), 0, 255).astype(np.uint8)


class TrackRecorder:
    """Feed every frame with :meth:`step`; call :meth:`keyframe` on the frames kept as keyframes."""

    def __init__(self, settings: TrackSettings | None = None) -> None:
        self.settings = settings or TrackSettings()
        self._prev: np.ndarray | None = None
        self._ids = np.zeros(0, np.int64)
        self._xy = np.zeros((0, 2), np.float32)
        self._next_id = 0
        self._scale = 1.0  # frame px per tracking px
        self._kf_gray: np.ndarray | None = None  # the last keyframe: its grey image and tracks (ids sorted)
        self._kf_ids = np.zeros(0, np.int64)
        self._kf_xy = np.zeros((0, 2), np.float32)
        self._frames: list[FrameTracks] = []  # frames stepped since the last keyframe (with keep_frames)

    def _lk(self, a: np.ndarray, b: np.ndarray, pts: np.ndarray, guess: np.ndarray | None = None):
        """Lucas-Kanade from grey ``a`` to ``b`` (gain-matched to ``a``): (N,2) positions, (N,) ok."""
        st = self.settings
        flags = cv2.OPTFLOW_USE_INITIAL_FLOW if guess is not None else 0
        nxt = None if guess is None else guess.reshape(-1, 1, 2).copy()
        p1, ok, _ = cv2.calcOpticalFlowPyrLK(
            a, _gain_matched(b, a), pts.reshape(-1, 1, 2), nxt, winSize=(st.window, st.window), maxLevel=st.levels,
            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03), flags=flags)
        p1 = p1.reshape(-1, 2)
        h, w = b.shape
        ok = (ok.ravel() == 1) & (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
        return p1, ok

    def step(self, image: np.ndarray, gray: np.ndarray | None = None, index: int | None = None) -> None:
        """Track the live corners into this frame. image: (H,W,3) uint8 RGB, every frame in order;
        gray: its ``gray_at(image, settings.side)`` when the caller already has it; index: the frame's
        index in the video (kept with its tracks when ``keep_frames``)."""
        gray = gray_at(image, self.settings.side) if gray is None else gray
        self._scale = max(image.shape[:2]) / max(gray.shape)
        if self._prev is not None and len(self._xy):
            p1, ok = self._lk(self._prev, gray, self._xy)
            if self.settings.frame_check:
                back, ok2 = self._lk(gray, self._prev, p1)
                ok &= ok2 & (np.linalg.norm(back - self._xy, axis=1) < self.settings.max_fb_error)
            self._ids, self._xy = self._ids[ok], p1[ok].astype(np.float32)
        self._prev = gray
        if self.settings.keep_frames and index is not None and len(self._ids):
            self._frames.append(FrameTracks(index, self._ids.copy(), (self._xy * self._scale).astype(np.float32)))

    def _check_since_keyframe(self) -> None:
        """Track once more straight from the last keyframe, starting from the frame-by-frame result:
        a track whose two answers differ has drifted or jumped, and is dropped; the others take the
        direct answer (one step of drift per keyframe instead of one per frame)."""
        if self._kf_gray is None or not len(self._ids) or self._prev is None:
            return
        rows = np.searchsorted(self._kf_ids, self._ids)  # every live track was live at the last keyframe
        direct, ok = self._lk(self._kf_gray, self._prev, self._kf_xy[rows], guess=self._xy)
        ok &= np.linalg.norm(direct - self._xy, axis=1) < self.settings.max_fb_error
        self._ids, self._xy = self._ids[ok], direct[ok].astype(np.float32)

    def keyframe(self) -> KeyframeTracks:
        """The live tracks in the last stepped frame (in that frame's pixels); then new corners are
        added where there is room, so the next keyframes can share them."""
        st = self.settings
        self._check_since_keyframe()
        between = self._frames[:-1]  # the last one stepped is this keyframe
        self._frames = []
        out = KeyframeTracks(self._ids.copy(), (self._xy * self._scale).astype(np.float32), between)
        room = st.max_points - len(self._xy)
        if self._prev is not None and room > st.max_points // 4:
            new = structure_corners(self._prev, st, room, self._xy)
            if len(new):
                ids = np.arange(self._next_id, self._next_id + len(new), dtype=np.int64)
                self._next_id += len(new)
                self._ids = np.concatenate([self._ids, ids])
                self._xy = np.concatenate([self._xy, new])
                out = KeyframeTracks(self._ids.copy(), (self._xy * self._scale).astype(np.float32), between)
        order = np.argsort(self._ids)
        self._kf_gray, self._kf_ids, self._kf_xy = self._prev, self._ids[order], self._xy[order]
        return out
