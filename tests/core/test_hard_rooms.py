"""The hard room set: new RoomConfig options keep the old hashes, the hard_walk trajectory, light changes.

Fast (no render): the renders themselves are checked by rendering the set (docs/bench.md, "Hard set").
"""

import json

import numpy as np
import pytest

from core.scenegen.catalog import TEST_LIBRARY, library_files
from core.scenegen.room_config import OPTIONAL_DEFAULTS, RoomConfig
from core.scenegen.room_render import light_schedule
from core.scenegen.splits import TEST_LIBRARIES
from core.scenegen.suite import HARD_ROOM, ROOM_SETS, hard_configs, named_rooms, test_suite

needs_furniture = pytest.mark.skipif(TEST_LIBRARY not in library_files(),
                                     reason="apt-get install sweethome3d-furniture")

# Computed before surfaces / light_changes / fast_denoise existed: these must never change.
SUITE_HASHES = {
    "test_living": "407de78b289181df45cc56ffa63d11f1795bd0c0c2313fef146fb94a65a85e2b",
    "test_bedroom": "ff73afe333cbcccabfd6ed2c0be180c57017328e5de65f4f10623705fc8df828",
    "test_kitchen": "2189b26b57d1e61d1ebe2af3803cfa03c179211a703ec6690bff37c6293fd3c4",
    "test_office": "5baf5cd05706fd32bf1bbb438977b4693a068ee3eddee173c3de24dd7a32f63d",
    "test_mixed": "47761ab3668a20fd1663832c8038f861de389ee676d23e802fe3f699df457e18",
}
DEFAULT_HASH = "4de1ee9b3fead385256a3c23b6753f7d998eb46eaa71d1905c496b22d12b9fc5"
SCAN_L_HASH = "ad6dfc9ed5eb31101f753189bc8d8e1c470fc2ae9093202fd2ac33b4c0ce8925"  # seed=4, walk_scan, L


def test_existing_hashes_unchanged():
    assert {c.name: c.hash() for c in test_suite()} == SUITE_HASHES
    assert RoomConfig().hash() == DEFAULT_HASH
    assert RoomConfig(seed=4, trajectory="walk_scan", shape="L").hash() == SCAN_L_HASH
    # the defaults spelt out are the same config
    assert RoomConfig(surfaces="textured", light_changes=False, fast_denoise=False).hash() == DEFAULT_HASH


def test_new_fields_only_in_json_when_set():
    d = json.loads(RoomConfig().to_json())
    assert not set(OPTIONAL_DEFAULTS) & set(d)
    assert RoomConfig.from_json(RoomConfig().to_json()) == RoomConfig()
    hard = RoomConfig(surfaces="flat", light_changes=True, fast_denoise=True, trajectory="hard_walk")
    d = json.loads(hard.to_json())
    assert (d["surfaces"], d["light_changes"], d["fast_denoise"]) == ("flat", True, True)
    assert RoomConfig.from_json(hard.to_json()) == hard
    hashes = {RoomConfig().hash(), hard.hash(), RoomConfig(surfaces="flat").hash(),
              RoomConfig(light_changes=True).hash(), RoomConfig(fast_denoise=True).hash()}
    assert len(hashes) == 5


@pytest.mark.parametrize("kw", [dict(surfaces="shiny"), dict(light_changes=1), dict(light_changes="yes"),
                                dict(fast_denoise=None), dict(trajectory="hard")])
def test_new_fields_validated(kw):
    with pytest.raises(ValueError):
        RoomConfig(**kw)


def test_hard_sets_named_and_split():
    assert {"hard_dev", "hard_test"} <= set(ROOM_SETS)
    dev, test = named_rooms("hard_dev"), named_rooms("hard_test")
    assert dev == hard_configs("dev") and test == hard_configs("test")
    assert [c.name for c in dev] == [f"hard_dev_{i}" for i in range(3)]
    assert [c.name for c in test] == [f"hard_test_{i}" for i in range(3)]
    for c in dev + test:
        assert (c.width, c.height, c.frames, c.fps) == (480, 360, 120, 15.0)
        assert c.surfaces == "flat" and c.samples == HARD_ROOM["samples"] <= 4
    for half in (dev, test):
        assert 1 <= sum(c.light_changes for c in half) < 3  # light changes in some
        assert sum(c.trajectory == "hard_walk" for c in half) >= 2  # hard_walk in most
    assert all(not set(c.libraries) & set(TEST_LIBRARIES) for c in dev)
    assert all(c.libraries == TEST_LIBRARIES for c in test)
    assert not {c.seed for c in dev} & {c.seed for c in test}
    assert len({c.hash() for c in dev + test}) == 6
    with pytest.raises(ValueError):
        hard_configs("val")


def test_bench_resolves_hard_sets(monkeypatch):
    import core.bench.run as run

    monkeypatch.setattr(run, "cached_scene", lambda cfg: cfg.name)
    assert run.resolve_scenes(["hard_dev", "hard_test"]) == [f"hard_{h}_{i}" for h in ("dev", "test") for i in range(3)]


def test_light_schedule():
    t = np.arange(120) / 15.0
    lamps, sky = light_schedule(RoomConfig(), 4, t)
    assert (lamps == 1).all() and (sky == 1).all()
    for lighting in ("day", "evening", "overcast"):
        for n in (1, 2, 6):
            cfg = RoomConfig(seed=3, lighting=lighting, light_changes=True)
            lamps, sky = light_schedule(cfg, n, t)
            assert lamps.shape == (120, n) and sky.shape == (120,)
            assert set(np.unique(lamps)) <= {0.0, 0.2, 1.0} and (lamps < 1).any() and (lamps == 1).all(1).any()
            assert (lamps.max(1) > 0).all()  # never all lamps off
            assert 0.39 < sky.min() and sky.max() < 2.51 and sky.max() / sky.min() > 2
            assert np.abs(np.diff(sky)).max() < 0.2  # daylight changes smoothly
    a, b = light_schedule(cfg, 6, t), light_schedule(cfg, 6, t)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def _motion(Wc, fps):
    R, c = Wc[:, :3, :3], Wc[:, :3, 3]
    v = np.linalg.norm(np.diff(c, axis=0), axis=1) * fps
    a = np.linalg.norm(np.diff(c, 2, axis=0), axis=1) * fps ** 2
    w = np.arccos(np.clip((np.einsum("fij,fij->f", R[1:], R[:-1]) - 1) / 2, -1, 1)) * fps
    return v, a, w


@needs_furniture
def test_existing_trajectories_unchanged():
    from core.scenegen.room_layout import generate_layout
    from core.scenegen.trajectory import camera_trajectory

    # sums over the poses computed before hard_walk existed
    for cfg, pos, rot in [(test_suite()[0], 934.1441163693751, -72.37122978865821),
                          (test_suite()[1], 777.520760052845, -28.0229775486061),
                          (RoomConfig(), 1046.188688973672, -220.82307581863728),
                          (RoomConfig(seed=4, trajectory="walk_scan", shape="L"), 800.114088186328,
                           -34.26745878469929)]:
        Wc, _ = camera_trajectory(cfg, generate_layout(cfg))
        assert Wc[:, :3, 3].sum() == pytest.approx(pos, abs=1e-6)
        assert Wc[:, :3, :3].sum() == pytest.approx(rot, abs=1e-6)


HARD_WALKS = [c for c in hard_configs("dev") + hard_configs("test") if c.trajectory == "hard_walk"] \
    if TEST_LIBRARY in library_files() else []


@needs_furniture
@pytest.mark.parametrize("cfg", HARD_WALKS + [RoomConfig(seed=4, trajectory="hard_walk"),  # no blank wall: fallback
                                              RoomConfig(seed=11, trajectory="hard_walk", shape="L", frames=300)],
                         ids=lambda c: f"{c.name}-{c.seed}-{c.shape}-{c.frames}")
def test_hard_walk_inside_smooth_and_hard(cfg):
    from core.scenegen.room_layout import generate_layout
    from core.scenegen.trajectory import (CLOSEUP_DISTANCE, HARD_MAX_ANGULAR_SPEED, MAX_SPEED, camera_clearance,
                                          camera_trajectory, closeup_spots)

    lay = generate_layout(cfg)
    Wc, t = camera_trajectory(cfg, lay)
    assert Wc.shape == (cfg.frames, 4, 4) and np.allclose(np.diff(t), 1 / cfg.fps)
    R, c = Wc[:, :3, :3], Wc[:, :3, 3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(R), 1)
    assert np.array_equal(camera_trajectory(cfg, lay)[0], Wc)
    v, a, w = _motion(Wc, cfg.fps)
    assert v.max() < MAX_SPEED and a.max() < 4.0 and w.max() < HARD_MAX_ANGULAR_SPEED  # hand-held smooth
    # inside the room, never in furniture, at eye height
    wall_d, item_d = camera_clearance(Wc, lay)
    assert wall_d.min() > CLOSEUP_DISTANCE[0] - 0.1 and item_d.min() > 0.1
    assert (c[:, 2] > 1.2).all() and (c[:, 2] < 1.8).all() and (c[:, 2] < lay.height - 0.5).all()
    # hard: fast pans and rotations on the spot (>= 0.5 s turning > 1 rad/s while moving < 5 cm)
    assert w.max() > 2.0
    k = int(0.5 * cfg.fps)
    still_turning = [i for i in range(len(w) - k) if (w[i:i + k] > 1.0).all()
                     and np.linalg.norm(c[i + k] - c[i]) < 0.05]
    assert still_turning
    if cfg in HARD_WALKS:  # a close-up of a blank wall, >= 1 s, facing it
        spots = closeup_spots(lay)
        assert spots
        fwd = R[:, :, 2]
        facing = np.zeros(len(c), bool)
        for sp in spots:
            n = np.array(sp.normal)
            facing |= fwd[:, :2] @ -n > 0.9
        close = (wall_d < CLOSEUP_DISTANCE[1] + 0.1) & facing
        runs = np.diff(np.r_[0, close.astype(int), 0])
        longest = (np.nonzero(runs == -1)[0] - np.nonzero(runs == 1)[0]).max()
        assert longest >= cfg.fps


@needs_furniture
def test_closeup_spots_are_blank():
    from core.scenegen.room_layout import footprint_corners, generate_layout
    from core.scenegen.trajectory import _quad_overlap, closeup_spots

    for cfg in HARD_WALKS:
        lay = generate_layout(cfg)
        for sp in closeup_spots(lay):
            w = lay.walls[sp.wall]
            assert all(abs(o.offset - sp.s) > o.width / 2 + sp.clear for o in lay.openings if o.wall == sp.wall)
            p, n = w.point(sp.s), np.array(sp.normal)
            tang = np.array([-n[1], n[0]])
            view = np.array([p - tang * sp.clear, p + tang * sp.clear, p + tang * sp.clear + n * 0.9,
                             p - tang * sp.clear + n * 0.9]) + n * 0.01
            assert not any(_quad_overlap(footprint_corners(it.center, it.size, it.yaw), view)
                           for it in lay.items if it.top > 0.85)


def test_dev_walks_are_training_rooms_apart_from_the_suite():
    walks = named_rooms("dev_walk")
    assert [c.name for c in walks] == [f"dev_walk_{i}" for i in range(6)]
    assert all(not set(c.libraries) & set(TEST_LIBRARIES) for c in walks)
    assert not {c.seed for c in walks} & {c.seed for c in test_suite() + hard_configs("test")}
    assert all(c.surfaces == "textured" and (c.width, c.height, c.frames) == (320, 240, 150) for c in walks)
    big = named_rooms("dev_walk_640")
    assert [c.name for c in big] == [f"dev640_{i}" for i in range(6)]
    assert [(c.width, c.height) for c in big] == [(640, 480)] * 6
    assert [c.replace(name=w.name, width=320, height=240) for c, w in zip(big, walks)] == walks  # the same walks
