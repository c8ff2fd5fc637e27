"""Decode videos with PyAV: metadata, upright RGB frames, real timestamps (VFR safe).

Every decoding failure becomes a JobError with a message for the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..jobs import JobError


@dataclass
class VideoInfo:
    path: Path
    width: int  # upright (after rotation), before any resize
    height: int
    fps: float  # average frame rate (nominal for variable-frame-rate videos)
    duration: float  # seconds, 0 when the container does not say
    frame_count: int  # container's estimate, 0 when unknown
    rotation: int  # degrees counter-clockwise applied to stored frames to show them upright
    codec: str


@dataclass
class Frame:
    """image: (H,W,3) uint8 RGB, upright, resized to the working size."""

    image: np.ndarray
    index: int
    timestamp: float


def _open(path: Path):
    import av

    if not path.exists():
        raise JobError(f"video not found: {path}")
    if not path.is_file():
        raise JobError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise JobError(f"the file is empty: {path.name}")
    try:
        container = av.open(os.fspath(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise JobError(f"{path.name} is not a readable video file ({exc.__class__.__name__})") from None
    if not container.streams.video:
        container.close()
        raise JobError(f"{path.name} has no video stream")
    return container


def _upright(image: np.ndarray, rotation: int) -> np.ndarray:
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _working_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Size (stored orientation) after capping the longest side; even numbers for swscale."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read metadata (and the first frame's rotation) without decoding the whole video."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000.0
        rotation = 0
        width, height = stream.codec_context.width, stream.codec_context.height
        try:
            for frame in container.decode(stream):
                rotation = int(frame.rotation or 0)
                width, height = frame.width, frame.height
                break
        except Exception as exc:  # noqa: BLE001 - any decoder failure is "unreadable"
            raise JobError(f"{path.name}: cannot decode video ({exc.__class__.__name__}: {exc})") from None
        if not width or not height:
            raise JobError(f"{path.name}: no decodable video frames")
        if int(round(rotation / 90.0)) % 2:
            width, height = height, width
        return VideoInfo(path, width, height, fps, duration, int(stream.frames or 0), rotation, stream.codec_context.name)
    finally:
        container.close()


def iter_frames(
    path: str | os.PathLike,
    max_side: int | None = 640,
    max_frames: int | None = None,
    on_truncated=None,
) -> Iterator[Frame]:
    """Yield upright RGB frames in decode order with their presentation time in seconds.

    A decoding error after at least one good frame ends the iteration (a truncated file
    keeps what it has; ``on_truncated(message)`` is told); before any frame it is a JobError.
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base) if stream.time_base else 0.0
        count = 0
        t0: float | None = None
        decoder = container.decode(stream)
        while max_frames is None or count < max_frames:
            try:
                frame = next(decoder)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - FFmpeg raises many types for bad data
                if count == 0:
                    raise JobError(f"{path.name}: cannot decode video ({exc.__class__.__name__}: {exc})") from None
                if on_truncated is not None:
                    on_truncated(f"{path.name}: decoding stopped after {count} frames ({exc.__class__.__name__})")
                break
            rotation = int(frame.rotation or 0)
            w, h = _working_size(frame.width, frame.height, max_side)
            rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
            if frame.pts is not None and tb:
                t = frame.pts * tb
            else:
                t = count / float(stream.average_rate or 30)
            t0 = t if t0 is None else t0
            yield Frame(_upright(rgb, rotation), count, float(t - t0))
            count += 1
        if count == 0:
            raise JobError(f"{path.name}: the video has no decodable frames")
    finally:
        container.close()
