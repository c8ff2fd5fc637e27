"""Synthetic room generator: taxonomy, split, layout, trajectory, determinism, one tiny render."""

import importlib.util
import itertools

import numpy as np
import pytest

from core.scenegen.catalog import TEST_LIBRARY, library_files, load_catalog
from core.scenegen.room_config import RoomConfig
from core.scenegen.room_layout import boxes_overlap, footprint_corners, generate_layout
from core.scenegen.splits import TEST_LIBRARIES, test_model_ids, training_libraries, training_model_ids
from core.scenegen.suite import test_suite, training_configs
from core.scenegen.taxonomy import CLASSES, FREQUENCY_ORDER, classify_entry, head_common_tail
from core.scenegen.trajectory import MAX_ANGULAR_SPEED, MAX_SPEED, camera_trajectory

pytestmark = pytest.mark.skipif(TEST_LIBRARY not in library_files(),
                                reason="apt-get install sweethome3d-furniture")


def test_taxonomy_covers_20_classes_in_test_library():
    classes = {classify_entry(e) for e in load_catalog(TEST_LIBRARIES)} - {None}
    assert len(classes) >= 20
    assert set(classes) <= set(CLASSES)
    g = head_common_tail(FREQUENCY_ORDER)
    assert sum(len(v) for v in g.values()) == len(CLASSES) - 1
    assert g["head"][0] == "wall"


def test_split_never_mixes_libraries():
    test_ids = set(test_model_ids())
    assert test_ids and not (test_ids & set(training_model_ids()))
    assert TEST_LIBRARY not in training_libraries()
    for cfg in training_configs(6, seed=3):
        assert TEST_LIBRARY not in cfg.libraries
        assert not set(generate_layout(cfg).model_ids()) & test_ids
    for cfg in test_suite():
        assert cfg.libraries == TEST_LIBRARIES
        lay = generate_layout(cfg)
        assert {it.library for it in lay.items} == {TEST_LIBRARY}
        assert set(lay.model_ids()) <= test_ids


def test_suite_has_5_scenes_and_20_classes():
    suite = test_suite()
    assert len(suite) >= 5 and all(c.frames >= 150 and (c.width, c.height) == (640, 480) for c in suite)
    classes = set()
    for c in suite:
        classes |= {it.cls for it in generate_layout(c).items}
    assert len(classes) >= 20


@pytest.mark.parametrize("shape,room_type,n", [("rect", "living", 8), ("L", "office", 25), ("rect", "kitchen", 18),
                                                ("L", "bedroom", 12), ("rect", "mixed", 25)])
def test_layout_inside_and_no_interpenetration(shape, room_type, n):
    cfg = RoomConfig(seed=11, shape=shape, room_type=room_type, num_objects=n)
    lay = generate_layout(cfg)
    assert 8 <= len(lay.items) <= 25 and len(lay.items) == n
    assert any(o.kind == "door" for o in lay.openings) and any(o.kind == "window" for o in lay.openings)
    W, D = cfg.room_width, cfg.room_depth
    for it in lay.items:
        c = footprint_corners(it.center, it.size, it.yaw)
        assert c.min() >= -1e-6 and c[:, 0].max() <= W + 1e-6 and c[:, 1].max() <= D + 1e-6
        assert it.top <= cfg.room_height
        if it.support is None:
            assert it.z == 0.0
        else:
            sup = next(s for s in lay.items if s.instance_id == it.support)
            assert 0 < it.z <= sup.top + 1e-9
        if shape == "L":  # not in the cut-out corner
            cx, cy, hx, hy = lay.obstacles[0][:4]
            assert not boxes_overlap(it.center, it.size, it.yaw, it.z, (cx, cy), (2 * hx, 2 * hy, 3), 0, 0)
    for a, b in itertools.combinations(lay.items, 2):
        if a.support == b.instance_id or b.support == a.instance_id:
            continue
        assert not boxes_overlap(a.center, a.size, a.yaw, a.z, b.center, b.size, b.yaw, b.z), (a.name, b.name)


@pytest.mark.parametrize("kind,shape", [("walk_loop", "rect"), ("walk_loop", "L"), ("walk_scan", "rect")])
def test_trajectory_smooth(kind, shape):
    cfg = RoomConfig(seed=4, trajectory=kind, shape=shape, frames=150, fps=15)
    lay = generate_layout(cfg)
    Wc, t = camera_trajectory(cfg, lay)
    assert Wc.shape == (150, 4, 4) and np.allclose(np.diff(t), 1 / 15)
    R = Wc[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(R), 1)
    c = Wc[:, :3, 3]
    v = np.linalg.norm(np.diff(c, axis=0), axis=1) * cfg.fps
    a = np.linalg.norm(np.diff(c, 2, axis=0), axis=1) * cfg.fps ** 2
    w = np.arccos(np.clip((np.einsum("fij,fij->f", R[1:], R[:-1]) - 1) / 2, -1, 1)) * cfg.fps
    assert v.max() < MAX_SPEED and a.max() < 4.0 and w.max() < MAX_ANGULAR_SPEED
    assert v.sum() / cfg.fps > 1.0  # it walks
    assert (c[:, 2] > 1.2).all() and (c[:, 2] < 1.8).all()
    assert (c[:, 0] > 0.5).all() and (c[:, 0] < cfg.room_width - 0.5).all()
    # the camera looks roughly horizontal and slightly down (OpenCV: z forward, y down)
    assert (R[:, 2, 2] < 0.2).all() and (R[:, 2, 1] < -0.5).all()  # camera y (down) points down


def test_determinism():
    cfg = RoomConfig(seed=7, num_objects=20, shape="L")
    l1, l2 = generate_layout(cfg), generate_layout(RoomConfig.from_json(cfg.to_json()))
    assert l1.to_dict() == l2.to_dict()
    assert np.array_equal(camera_trajectory(cfg, l1)[0], camera_trajectory(cfg, l2)[0])
    assert cfg.hash() == RoomConfig.from_json(cfg.to_json()).hash() != cfg.replace(seed=8).hash()
    assert generate_layout(cfg.replace(seed=8)).to_dict() != l1.to_dict()


@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the bpy module")
def test_tiny_render(tmp_path, monkeypatch):
    monkeypatch.setenv("OV3R_CACHE", str(tmp_path / "cache"))
    from core.scenegen.room_render import render_room
    from core.scenegen.taxonomy import class_id

    cfg = RoomConfig(name="tiny", seed=5, width=64, height=48, frames=3, samples=2, denoise=False,
                     gt_points=200000, num_objects=10)
    out = tmp_path / "scene"
    info = render_room(cfg, out)
    assert info["hash"] == cfg.hash()
    cams = np.load(out / "cameras.npz")
    K, Wc = cams["intrinsics"], cams["world_from_camera"]
    depth = np.load(out / "depth.npz")["depth_mm"].astype(np.float64) / 1000
    lab = np.load(out / "labels.npz")
    inst, sem = lab["instance"], lab["semantic"]
    gt = np.load(out / "gt_cloud.npz")
    import json

    table = {r["instance_id"]: r for r in json.loads((out / "classes.json").read_text())["instances"]}
    assert depth.shape == inst.shape == (3, 48, 64) and (depth > 0).all()
    # every labelled pixel is a known instance, with that instance's class
    assert set(np.unique(inst)) <= set(table)
    for iid in np.unique(inst):
        assert (sem[inst == iid] == table[iid]["class_id"]).all()
    assert {r["class"] for r in table.values()} >= {"wall", "floor", "ceiling", "door", "window"}
    lay = generate_layout(cfg)
    for it in lay.items:
        assert table[it.instance_id]["model_id"] == it.model_id and table[it.instance_id]["class"] == it.cls
    # depth back-projects onto the GT cloud
    from scipy.spatial import cKDTree

    f = 1
    v, u = np.mgrid[0:48, 0:64]
    z = depth[f]
    pc = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * z, (v + 0.5 - K[1, 2]) / K[1, 1] * z, z], -1).reshape(-1, 3)
    pw = pc @ Wc[f, :3, :3].T + Wc[f, :3, 3]
    d, j = cKDTree(gt["points"]).query(pw)
    assert np.median(d) < 0.02
    same = gt["instance"][j] == inst[f].reshape(-1)
    assert same.mean() > 0.85
    assert gt["semantic"].dtype == np.uint8 and len(gt["points"]) > 1000
    assert (out / "video.mp4").stat().st_size > 0
    wall = class_id("wall")
    assert (gt["semantic"] == wall).any()


def test_suite_command_renders_the_training_rooms_of_the_training_data(monkeypatch, capsys):
    import core.scenegen.suite as suite
    from core.train.clip3r_data import Clip3rDataConfig, room_configs

    seen = []
    monkeypatch.setattr(suite, "cached_scene", lambda cfg, log=None: seen.append(cfg) or "cached")
    assert suite.main(["--training", "8"]) == 0
    assert seen == room_configs(Clip3rDataConfig(rooms=8))  # valid layouts only, in order
    assert all(c.name.startswith("train_") and not set(c.libraries) & set(TEST_LIBRARIES) for c in seen)
    assert (seen[0].width, seen[0].height, seen[0].frames) == (224, 168, 40)
