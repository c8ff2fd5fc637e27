"""A long test video made from a short one: played forward and backward until it lasts ``--minutes``, each
frame scaled to cover ``--size`` (cropped to its aspect), for the speed and memory benchmark of long inputs.

    python -m core.bench.long_video assets/sample_room.mp4 /tmp/renders/long_1080p.mp4 --minutes 10

Frames stream through: the source's frames are held at their own size, the output frames one at a time.
"""

from __future__ import annotations

import argparse
import sys
from typing import Iterator, Sequence

import cv2
import numpy as np

from ..video.reader import iter_frames
from ..video.writer import write_video


def cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H,W,3) -> (height,width,3): scaled to cover the new size, centred, the overhang cropped."""
    h, w = rgb.shape[:2]
    s = max(width / w, height / h)
    big = cv2.resize(rgb, (max(width, round(w * s)), max(height, round(h * s))), interpolation=cv2.INTER_CUBIC)
    y, x = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return big[y:y + height, x:x + width]


def ping_pong(n: int, count: int) -> Iterator[int]:
    """``count`` source indices 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ... (no frame repeated at the turns)."""
    period = max(1, 2 * n - 2)
    for i in range(count):
        k = i % period
        yield k if k < n else period - k


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.long_video", description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    p.add_argument("--crf", type=int, default=23)
    a = p.parse_args(argv)
    width, height = (int(v) for v in a.size.lower().split("x"))
    source = [f.image for f in iter_frames(a.source, max_side=None)]
    if not source:
        raise SystemExit(f"{a.source}: no frames")
    count = int(round(a.minutes * 60 * a.fps))
    write_video(a.out, (cover(source[i], width, height) for i in ping_pong(len(source), count)), fps=a.fps,
                crf=a.crf, preset="ultrafast")
    print(f"{a.out}: {count} frames {width}x{height} at {a.fps:g} fps from {len(source)} source frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
