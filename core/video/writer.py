"""Encode frames to H.264 with PyAV (fixtures, benchmarks, the bundled sample)."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 30.0,
    rotation: int = 0,
    timestamps: Sequence[float] | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    tune: str | None = None,
) -> None:
    """Write (H,W,3) uint8 RGB frames as an H.264 mp4 (yuv420p).

    rotation:   display rotation in degrees counter-clockwise stored in the container
                (what phones write for portrait videos); frames are stored as given.
    timestamps: seconds per frame for a variable-frame-rate file (default: regular ``fps``).
    crf, preset, tune: x264 quality settings.
    """
    import av

    tb = Fraction(1, 90000)
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, **({"tune": tune} if tune else {})}
        stream.codec_context.time_base = tb
        if rotation:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            if i == 0:
                stream.height, stream.width = rgb.shape[:2]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            t = timestamps[i] if timestamps is not None else i / fps
            frame.pts = int(round(t / tb))
            frame.time_base = tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
