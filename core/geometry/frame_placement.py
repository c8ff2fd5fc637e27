"""Every decoded frame gets a camera: registered keyframes as they are, frames the engine registered
from their own point tracks as they are, the other frames between registered keyframes interpolated
(rotation by slerp, centre linearly), and runs around failed keyframes flagged as unplaced.

A frame counts as placed when it is a registered keyframe or when both keyframes around it (the
last one at or before it and the next one after it) registered: keyframe selection guarantees the
view changed little between them. Frames after the last keyframe follow it.

Each run of unplaced frames is told apart by what its keyframes show (blank frames, a plain surface with
nothing to track, or structure that was not matched to the rest of the video): a long run that pans from
furniture onto a plain wall is reported as two ranges with their own reasons.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..scene.cameras import Cameras
from ..scene.frame_path import INTERPOLATED, REGISTERED, UNPLACED, FramePath
from ..video.keyframes import BLANK_STD
from ..video.tracks import TrackSettings, gray_at, structure_corners

#: below this many corners with real structure (the point tracker's, of 300 asked) on a 320 px keyframe, it is
#: "low texture": on the hard rooms' close-ups of plain walls under 10, on their furniture 20 and more
LOW_TEXTURE_CORNERS = 20

#: why a keyframe could not be placed, in the order ``keyframe_reason`` tests them
BLANK, LOW_TEXTURE, UNMATCHED = "blank frames", "low texture", "not matched to the rest of the video"
#: an unmatched run whose first keyframe is this much brighter or darker than the keyframe before it (|log| of the
#: mean grey's ratio; a light switched on the hard rooms: 0.8-0.9, the largest step of any other render: 0.12)
LIGHT_CHANGED, LIGHT_JUMP = "the lighting changed", 0.4


def place_frames(timestamps: np.ndarray, keyframe_index: np.ndarray, cameras: Cameras,
                 frame_poses: dict | None = None) -> FramePath:
    """Cameras for all F decoded frames.

    timestamps:     (F,) float64 seconds of every decoded frame.
    keyframe_index: (K,) int, increasing: the frames given to the engine.
    cameras:        the engine's registered keyframes (``frame_index`` a subset of ``keyframe_index``).
    frame_poses:    frames the engine registered itself: {"index": (R,) int, "world_from_camera":
                    (R,4,4)}; they count as registered, wherever they lie (a registered keyframe keeps the
                    pose in ``cameras``), and those that are keyframes anchor the interpolation as ``cameras`` do.
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
    own = np.zeros(0, np.int64)
    own_wfc = np.zeros((0, 4, 4))
    if frame_poses is not None and len(frame_poses["index"]):
        own = np.asarray(frame_poses["index"], np.int64)
        inside = (own >= 0) & (own < f) & ~np.isin(own, reg)
        own, own_wfc = own[inside], np.asarray(frame_poses["world_from_camera"], np.float64)[inside]
    # the keyframes the engine registered as frames anchor the path like its cameras
    anchor_own = np.isin(own, kf)
    anchors = np.concatenate([reg, own[anchor_own]])
    order = np.argsort(anchors)
    anchors, anchor_wfc = anchors[order], np.concatenate([wfc, own_wfc[anchor_own]])[order]

    frames = np.arange(f)
    # interpolate between the registered neighbours; hold the end poses outside them
    q = np.clip(frames, anchors[0], anchors[-1]).astype(np.float64)
    if len(anchors) > 1:
        rot = Slerp(anchors.astype(np.float64), Rotation.from_matrix(anchor_wfc[:, :3, :3]))(q).as_matrix()
        centre = np.stack([np.interp(q, anchors, anchor_wfc[:, i, 3]) for i in range(3)], 1)
    else:
        rot = np.repeat(anchor_wfc[:1, :3, :3], f, 0)
        centre = np.repeat(anchor_wfc[:1, :3, 3], f, 0)
    out = np.tile(np.eye(4), (f, 1, 1))
    out[:, :3, :3] = rot
    out[:, :3, 3] = centre
    nearest = np.clip(np.searchsorted(reg, frames), 0, len(reg) - 1)

    status = np.full(f, UNPLACED, np.uint8)
    ok_kf = np.isin(kf, anchors)
    prev_kf = np.searchsorted(kf, frames, side="right") - 1  # last keyframe at or before each frame
    next_kf = np.minimum(prev_kf + 1, len(kf) - 1)
    has_prev = prev_kf >= 0
    placed = has_prev & ok_kf[np.maximum(prev_kf, 0)] & (ok_kf[next_kf] | (prev_kf == len(kf) - 1))
    status[placed] = INTERPOLATED
    status[np.isin(frames, reg)] = REGISTERED
    out[own] = own_wfc
    status[own] = REGISTERED
    path = Cameras(K[nearest], out.astype(np.float32), ts.copy(), frames.astype(np.int32), cameras.image_size)
    return FramePath(path, status)


def keyframe_reason(image: np.ndarray) -> str:
    """Why a keyframe (H,W,3) uint8 that no model holds was not placed, from what it shows: BLANK (one flat colour),
    LOW_TEXTURE (under LOW_TEXTURE_CORNERS corners of real structure: render or sensor noise on a plain wall
    does not count) or UNMATCHED."""
    gray = gray_at(image, 320)  # as the keyframe selector and the point tracker see it
    if float(gray.std()) < BLANK_STD:
        return BLANK
    if len(structure_corners(gray, TrackSettings(), 300)) < LOW_TEXTURE_CORNERS:
        return LOW_TEXTURE
    return UNMATCHED


def _brightness_jump(a: np.ndarray, b: np.ndarray) -> bool:
    """True when images (H,W,3) uint8 ``a`` and ``b`` differ in mean grey by a factor of exp(LIGHT_JUMP) or more."""
    ma, mb = (float(gray_at(x, 320).mean()) + 1.0 for x in (a, b))
    return abs(np.log(mb / ma)) > LIGHT_JUMP


def reason_ranges(first: int, last: int, keyframe_images: dict[int, np.ndarray]) -> list[tuple[int, int, str]]:
    """The unplaced frames ``first``..``last`` split where the reason of their keyframes changes: (first, last,
    reason) per part, in order. A frame takes the reason of the last keyframe at or before it (frames before the
    range's first keyframe, the first one's); one keyframe whose reason differs from the same reason on both
    sides does not split the run (a keyframe's corner count near the threshold flickers). An unmatched start
    much brighter or darker than the keyframe before the range is LIGHT_CHANGED."""
    keys = sorted(i for i in keyframe_images if first <= i <= last)
    if not keys:
        return [(first, last, UNMATCHED)]
    reasons = [keyframe_reason(keyframe_images[i]) for i in keys]
    for k in range(1, len(reasons) - 1):
        if reasons[k - 1] == reasons[k + 1] != reasons[k]:
            reasons[k] = reasons[k - 1]
    before = [i for i in keyframe_images if i < keys[0]]
    if reasons[0] == UNMATCHED and before and _brightness_jump(keyframe_images[max(before)], keyframe_images[keys[0]]):
        k = 0
        while k < len(reasons) and reasons[k] == UNMATCHED:  # the unmatched stretch the change starts
            reasons[k] = LIGHT_CHANGED
            k += 1
    parts: list[tuple[int, int, str]] = []
    for k, (i, why) in enumerate(zip(keys, reasons)):
        start = first if k == 0 else i
        if parts and parts[-1][2] == why:
            continue
        if parts:
            parts[-1] = (parts[-1][0], start - 1, parts[-1][2])
        parts.append((start, last, why))
    return parts


def _clock(t: float) -> str:
    m, s = divmod(max(0.0, t), 60.0)
    return f"{int(m)}:{s:04.1f}"


def coverage_report(path: FramePath, keyframe_images: dict[int, np.ndarray]) -> dict:
    """The scene's ``metadata["coverage"]``: placed fraction, counts, and each unplaced range with
    its frames, times and reason. ``keyframe_images``: decoded frame index -> keyframe image."""
    ts = path.cameras.timestamps
    ranges = []
    for a, b in path.unplaced_ranges():
        for first, last, why in reason_ranges(a, b, keyframe_images):
            ranges.append({"first": first, "last": last, "start_s": float(ts[first]), "end_s": float(ts[last]),
                           "reason": why})
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
