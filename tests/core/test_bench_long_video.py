"""The long-video maker of the speed benchmark: a real encode and decode of a short ping-pong."""

import numpy as np

from core.bench.long_video import cover, main, ping_pong
from core.video.reader import iter_frames
from core.video.writer import write_video


def test_ping_pong_turns_without_repeating_the_end_frames():
    assert list(ping_pong(4, 10)) == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert list(ping_pong(1, 3)) == [0, 0, 0]


def test_cover_fills_the_new_aspect_and_keeps_the_centre():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[20:28, 28:36] = 255  # a white square in the middle
    out = cover(rgb, 96, 54)
    assert out.shape == (54, 96, 3)
    assert out[27, 48].min() > 200 and out[0, 0].max() == 0


def test_main_writes_the_requested_length_and_size(tmp_path):
    src = tmp_path / "src.mp4"
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)]
    write_video(src, frames, fps=10.0)
    out = tmp_path / "long.mp4"
    assert main([str(src), str(out), "--minutes", str(23 / 600), "--fps", "10", "--size", "80x60"]) == 0
    got = [f.image for f in iter_frames(out, max_side=None)]
    assert len(got) == 23 and got[0].shape == (60, 80, 3)
    # the 9th frame (index 8) plays the source backward: source frame 0 again
    means = [float(g.mean()) for g in got]
    assert abs(means[8] - means[0]) < 6 and means[4] > means[3] > means[0]
