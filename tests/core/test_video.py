import numpy as np
import pytest
from video_fixtures import make_pan_video, pan_frames

from ov3r.core.jobs import JobError
from ov3r.core.video import KeyframeSettings, iter_frames, probe_video, select_keyframes
from ov3r.core.video.writer import write_video


def test_decode_frames_sizes_and_timestamps(tmp_path):
    path = make_pan_video(tmp_path / "pan.mp4", n=20, fps=25)
    info = probe_video(path)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(25, rel=1e-3)
    frames = list(iter_frames(path, max_side=None))
    assert len(frames) == 20
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8
    assert [f.timestamp for f in frames[:3]] == pytest.approx([0, 0.04, 0.08], abs=1e-4)
    # The decoded content is the encoded content (lossy, but close).
    ref = pan_frames(20, 6.0)
    assert np.abs(frames[5].image.astype(int) - ref[5]).mean() < 10


def test_resolution_cap_and_frame_limit(tmp_path):
    path = make_pan_video(tmp_path / "pan.mp4", n=12)
    frames = list(iter_frames(path, max_side=160, max_frames=5))
    assert len(frames) == 5
    assert frames[0].image.shape == (120, 160, 3)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_gives_upright_frames(tmp_path, rotation):
    frames = pan_frames(4, 5.0)
    path = tmp_path / f"rot{rotation}.mp4"
    write_video(path, frames, fps=30, rotation=rotation)
    info = probe_video(path)
    assert info.rotation % 360 == rotation % 360
    got = list(iter_frames(path, max_side=None))[1].image
    want = np.rot90(frames[1], rotation // 90)
    assert got.shape == want.shape
    assert (info.width, info.height) == (want.shape[1], want.shape[0])
    err = np.abs(got.astype(int) - want).mean()
    wrong = np.rot90(frames[1], rotation // 90 + 2)  # same shape, wrong way up
    assert err < 10 and err < 0.3 * np.abs(got.astype(int) - wrong).mean()


def test_variable_frame_rate_keeps_real_timestamps(tmp_path):
    ts = [0.0, 0.033, 0.1, 0.5, 0.52, 1.25]
    path = tmp_path / "vfr.mp4"
    write_video(path, pan_frames(len(ts), 5.0), fps=30, timestamps=ts)
    got = [f.timestamp for f in iter_frames(path)]
    assert got == pytest.approx(ts, abs=2e-3)


def test_keyframes_follow_motion_not_stride(tmp_path):
    # 30 still frames, then 40 frames panning fast: keyframes concentrate in the moving part.
    still = pan_frames(1, 0.0)[0]
    moving = pan_frames(40, 8.0)
    path = tmp_path / "still_then_move.mp4"
    write_video(path, [still] * 30 + moving, fps=30)
    kfs, n = select_keyframes(iter_frames(path), KeyframeSettings())
    assert n == 70
    idx = np.array([k.index for k in kfs])
    assert (idx < 30).sum() == 1  # the first frame only
    assert (idx >= 30).sum() >= 5
    gaps = np.diff(idx[idx >= 30])
    assert gaps.max() <= 8  # 8 px/frame * 5 frames ~ 6% of the 400 px diagonal


def test_static_camera_is_a_clear_error(tmp_path):
    still = pan_frames(1, 0.0)[0]
    rng = np.random.default_rng(0)
    frames = [np.clip(still.astype(int) + rng.integers(-3, 4, still.shape), 0, 255).astype(np.uint8) for _ in range(40)]
    path = tmp_path / "static.mp4"
    write_video(path, frames)
    with pytest.raises(JobError, match="hardly moves"):
        select_keyframes(iter_frames(path))


def test_one_frame_video_is_a_clear_error(tmp_path):
    path = tmp_path / "one.mp4"
    write_video(path, pan_frames(1, 0.0))
    with pytest.raises(JobError, match="single frame"):
        select_keyframes(iter_frames(path))


def test_not_a_video_and_empty_and_missing(tmp_path):
    txt = tmp_path / "notes.mp4"
    txt.write_text("this is not a video\n" * 50)
    with pytest.raises(JobError, match="not a readable video|cannot decode|no decodable|no video stream"):
        probe_video(txt)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(JobError, match="empty"):
        probe_video(empty)
    with pytest.raises(JobError, match="not found"):
        probe_video(tmp_path / "missing.mp4")


def test_truncated_video_keeps_the_decodable_part(tmp_path):
    path = make_pan_video(tmp_path / "full.mp4", n=60)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    # mp4 with the index at the end cannot be opened once cut; use a stream container.
    ts_path = tmp_path / "full.mkv"
    write_video(ts_path, pan_frames(60, 6.0), fps=30)
    raw = ts_path.read_bytes()
    cut.with_suffix(".mkv").write_bytes(raw[: len(raw) // 2])
    messages: list[str] = []
    frames = list(iter_frames(cut.with_suffix(".mkv"), on_truncated=messages.append))
    assert 5 < len(frames) < 60
    # A cut mp4 (moov atom at the end) is unreadable: a clear JobError, not a crash.
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(JobError):
        list(iter_frames(cut))


def test_path_with_spaces_and_non_ascii(tmp_path):
    d = tmp_path / "vidéos de la salle ☕"
    d.mkdir()
    path = make_pan_video(d / "séjour 1.mp4", n=6)
    assert len(list(iter_frames(path))) == 6
