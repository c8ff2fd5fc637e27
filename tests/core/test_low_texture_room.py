"""The default geometry on a low-texture room it was not tuned on: flat single-colour walls, floor,
ceiling and furniture, a handheld walk at 320x240 that passes close to the furniture. Rendered once and
cached by content hash."""

from __future__ import annotations

import numpy as np
import pytest

from core.bench.peer import score_path
from core.jobs import JobContext
from core.pipeline import ReconstructSettings, reconstruct_video
from core.scene.frame_path import REGISTERED, UNPLACED
from core.scenegen.room_config import RoomConfig
from core.scenegen.suite import cached_scene, load_scene

#: never used to choose a setting; 90 frames at 15 fps, ~1 s a frame to render on 2 cores
LOW_TEXTURE_ROOM = RoomConfig(
    name="low_texture_walk", seed=4242, room_type="living", room_width=5.2, room_depth=4.2, num_objects=10,
    lighting="overcast", trajectory="walk_loop", width=320, height=240, frames=90, fps=15.0, samples=2,
    fast_denoise=True, surfaces="flat",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result():
    data = load_scene(cached_scene(LOW_TEXTURE_ROOM))
    scene = reconstruct_video(data["video"], JobContext(), ReconstructSettings(semantics=None))
    return data, scene


def test_coverage_is_reported_frame_by_frame(result):
    _, scene = result
    cov, path = scene.metadata["coverage"], scene.frame_path
    assert cov["frames"] == len(path) == LOW_TEXTURE_ROOM.frames
    assert cov["registered_frames"] == int((path.status == REGISTERED).sum()) >= 10
    assert cov["fraction"] == pytest.approx(float(path.placed().mean()))
    unplaced = np.flatnonzero(path.status == UNPLACED)
    named = {i for r in cov["unplaced"] for i in range(r["first"], r["last"] + 1)}
    assert named == set(unplaced.tolist())  # every unplaced frame is in a reported range, and only those


# Measured 2026-12-06 over 8 runs (pycolmap's threaded mapping varies from run to run): 63-100 % placed,
# ATE over the placed frames 22-43 cm (a self-calibrated focal length 188-283 px for the true 231).
OPEN = "the geometry issue's open target: this walk is placed only in part, or wrongly"


@pytest.mark.xfail(reason=OPEN, strict=False)
def test_low_texture_walk_places_95_percent_of_its_frames(result):
    assert result[1].metadata["coverage"]["fraction"] >= 0.95


@pytest.mark.xfail(reason=OPEN, strict=False)
def test_placed_frames_are_where_the_camera_was(result):
    data, scene = result
    score = score_path(scene.frame_path, data["cameras"]["world_from_camera"])
    extent = float(np.ptp(data["gt_cloud"]["points"], axis=0).max())
    assert score["ate_placed_cm"] / 100 < 0.02 * extent, score


def test_a_wrong_path_is_not_reported_as_a_sound_one(result):
    """Whatever the draw: placed frames off by more than 2 % of the room come with a warning (the seeded
    mapping runs disagreed), never as a clean success."""
    data, scene = result
    score = score_path(scene.frame_path, data["cameras"]["world_from_camera"])
    extent = float(np.ptp(data["gt_cloud"]["points"], axis=0).max())
    mapping = scene.metadata["mapping"]
    assert len(mapping["runs"]) >= 2
    if score["ate_placed_cm"] / 100 >= 0.02 * extent:
        assert not mapping["agreed"], (score, mapping)
        assert "the camera path is uncertain" in scene.metadata["coverage"]["warning"]
