"""Every decoded frame gets a camera: registered keyframes as they are, frames the engine registered
from their own point tracks as they are, the other frames between registered keyframes interpolated
(rotation by slerp, centre linearly), and runs around failed keyframes flagged as unplaced.

A frame counts as placed when it is a registered keyframe or when both keyframes around it (the
last one at or before it and the next one after it) registered: keyframe selection guarantees the
view changed little between them. Frames after the last keyframe follow it.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..scene.cameras import Cameras
from ..scene.frame_path import INTERPOLATED, REGISTERED, UNPLACED, FramePath
from ..video.keyframes import BLANK_STD, track_features
from ..video.tracks import gray_at

#: below this many trackable corners (of 300 asked) on a 320 px keyframe, it is "low texture"
LOW_TEXTURE_CORNERS = 40


def place_frames(timestamps: np.ndarray, keyframe_index: np.ndarray, cameras: Cameras,
                 frame_poses: dict | None = None) -> FramePath:
    """Cameras for all F decoded frames.

    timestamps:     (F,) float64 seconds of every decoded frame.
    keyframe_index: (K,) int, increasing: the frames given to the engine.
    cameras:        the engine's registered keyframes (``frame_index`` a subset of ``keyframe_index``).
    frame_poses:    frames the engine registered itself: {"index": (R,) int, "world_from_camera":
                    (R,4,4)}; they count as registered, wherever they lie (a registered keyframe keeps the
                    pose in ``cameras``).
    """
    ts = np.asarray(timestamps, np.float64)
    f = len(ts)
    kf = np.asarray(keyframe_index, np.int64)
    reg = np.asarray(cameras.frame_index, np.int64)
    order = np.argsort(reg)
    reg = reg[order]
    if f == 0 or len(reg) == 0:
        raise ValueError("no registered keyframe to place the frames from")
    wfc = np.asarray(cameras.world_from_camera, np.float64)[order]
    K = np.asarray(cameras.intrinsics, np.float32)[order]

    frames = np.arange(f)
    # interpolate between the registered neighbours; hold the end poses outside them
    q = np.clip(frames, reg[0], reg[-1]).astype(np.float64)
    if len(reg) > 1:
        rot = Slerp(reg.astype(np.float64), Rotation.from_matrix(wfc[:, :3, :3]))(q).as_matrix()
        centre = np.stack([np.interp(q, reg, wfc[:, i, 3]) for i in range(3)], 1)
    else:
        rot = np.repeat(wfc[:1, :3, :3], f, 0)
        centre = np.repeat(wfc[:1, :3, 3], f, 0)
    out = np.tile(np.eye(4), (f, 1, 1))
    out[:, :3, :3] = rot
    out[:, :3, 3] = centre
    nearest = np.clip(np.searchsorted(reg, frames), 0, len(reg) - 1)

    status = np.full(f, UNPLACED, np.uint8)
    ok_kf = np.isin(kf, reg)
    prev_kf = np.searchsorted(kf, frames, side="right") - 1  # last keyframe at or before each frame
    next_kf = np.minimum(prev_kf + 1, len(kf) - 1)
    has_prev = prev_kf >= 0
    placed = has_prev & ok_kf[np.maximum(prev_kf, 0)] & (ok_kf[next_kf] | (prev_kf == len(kf) - 1))
    status[placed] = INTERPOLATED
    status[np.isin(frames, reg)] = REGISTERED
    if frame_poses is not None and len(frame_poses["index"]):
        own = np.asarray(frame_poses["index"], np.int64)
        inside = (own >= 0) & (own < f) & ~np.isin(own, reg)
        own = own[inside]
        out[own] = np.asarray(frame_poses["world_from_camera"], np.float64)[inside]
        status[own] = REGISTERED
    path = Cameras(K[nearest], out.astype(np.float32), ts.copy(), frames.astype(np.int32), cameras.image_size)
    return FramePath(path, status)


def unplaced_reason(images: list[np.ndarray]) -> str:
    """A short why for a run of frames that could not be placed, from its keyframes' images (H,W,3) uint8."""
    if not images:
        return "not matched to the rest of the video"
    grays = [gray_at(im, 320) for im in images]  # as the keyframe selector sees them
    stds = [float(g.std()) for g in grays]
    corners = [len(track_features(g)) for g in grays]
    if np.median(stds) < BLANK_STD:
        return "blank frames"
    if np.median(corners) < LOW_TEXTURE_CORNERS:
        return "low texture"
    return "not matched to the rest of the video"


def _clock(t: float) -> str:
    m, s = divmod(max(0.0, t), 60.0)
    return f"{int(m)}:{s:04.1f}"


def coverage_report(path: FramePath, keyframe_images: dict[int, np.ndarray]) -> dict:
    """The scene's ``metadata["coverage"]``: placed fraction, counts, and each unplaced range with
    its frames, times and reason. ``keyframe_images``: decoded frame index -> keyframe image."""
    ts = path.cameras.timestamps
    ranges = []
    for a, b in path.unplaced_ranges():
        imgs = [im for i, im in keyframe_images.items() if a <= i <= b]
        ranges.append({"first": a, "last": b, "start_s": float(ts[a]), "end_s": float(ts[b]),
                       "reason": unplaced_reason(imgs)})
    return {
        "fraction": path.coverage(),
        "frames": len(path),
        "registered_frames": int((path.status == REGISTERED).sum()),
        "interpolated_frames": int((path.status == INTERPOLATED).sum()),
        "unplaced_frames": int((path.status == UNPLACED).sum()),
        "unplaced": ranges,
    }


def describe_unplaced(coverage: dict, limit: int = 4) -> str:
    """"frames 28-119 (0:01.9-0:07.9) could not be placed: low texture; ..." (at most ``limit`` ranges)."""
    parts = [f"frames {r['first']}-{r['last']} ({_clock(r['start_s'])}-{_clock(r['end_s'])}) could not be placed: "
             f"{r['reason']}" for r in coverage.get("unplaced", [])[:limit]]
    more = len(coverage.get("unplaced", [])) - limit
    if more > 0:
        parts.append(f"and {more} more range{'s' if more > 1 else ''}")
    return "; ".join(parts)


def coverage_summary(coverage: dict) -> str:
    """One line for the CLI and the Blender report."""
    return (f"placed {100 * coverage['fraction']:.0f}% of the video's {coverage['frames']} frames "
            f"({coverage['registered_frames']} registered, {coverage['interpolated_frames']} interpolated, "
            f"{coverage['unplaced_frames']} unplaced)")
