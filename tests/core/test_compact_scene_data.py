"""In-scene crops for the compact encoder from a rendered training room; test-library rooms refused."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the bpy module")


def _render(tmp_path, libraries, name):
    from core.scenegen.room_config import RoomConfig
    from core.scenegen.room_render import render_room

    cfg = RoomConfig(name=name, seed=3, width=128, height=96, frames=2, samples=2, denoise=False, gt_points=5000,
                     num_objects=8, libraries=tuple(libraries))
    out = tmp_path / name
    render_room(cfg, out)
    return out


def test_crops_from_a_training_room(tmp_path):
    from core.scenegen.splits import TEST_LIBRARIES, training_libraries
    from core.train.compact_scene_data import build_scene_crops, crops_from_scene

    room = _render(tmp_path, training_libraries(), "train_tiny")
    rgb, mask, keys, objects = crops_from_scene(room, res=64, min_pixels=40)
    assert rgb.shape[1:] == (64, 64, 3) and mask.shape == rgb.shape[:3] and len(keys) == len(rgb) > 0
    assert mask.reshape(len(mask), -1).any(1).all()
    classes = {o["class"] for o in objects.values()}
    assert {"wall", "floor"} <= classes
    assert not ({o["library"] for o in objects.values()} & set(TEST_LIBRARIES))
    labels = np.load(room / "labels.npz")["instance"]
    assert set(keys) <= {f"train_tiny/{i}" for i in np.unique(labels)}
    crops = build_scene_crops([room], res=64, min_pixels=40)
    assert len(crops.obj) == len(keys) and crops.obj.max() == len(crops.objects) - 1


def test_test_library_room_is_refused(tmp_path):
    from core.scenegen.splits import TEST_LIBRARIES
    from core.train.compact_scene_data import crops_from_scene

    room = _render(tmp_path, TEST_LIBRARIES, "test_tiny")
    with pytest.raises(ValueError, match="test library"):
        crops_from_scene(room)
