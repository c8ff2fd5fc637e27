"""Room segments for the OVS training are cached per room: adding rooms recomputes only the new ones."""

import numpy as np

from core.train import ovs_rooms


class _Enc:
    dim = 4


def _fake_segments(path, encoder, frames, points, max_points, min_purity, crop="masked"):
    rng = np.random.default_rng(frames)
    n = 3
    return {"points": [rng.random((5 + i, 6)).astype(np.float16) for i in range(n)],
            "clip_inst": [rng.random(4).astype(np.float32) for _ in range(n)],
            "clip_scene": [rng.random(4).astype(np.float32) for _ in range(n)],
            "label": [1, 2, 3], "purity": [0.5, 0.75, 1.0]}


def _room(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    (d / "scene.json").write_text('{"config": {"name": "%s"}}' % name)
    return d


def test_room_segments_are_cached_per_room(tmp_path, monkeypatch):
    monkeypatch.setenv("OV3R_CACHE", str(tmp_path / "cache"))
    calls = []

    def counted(path, *a, **kw):
        calls.append((path.name, a[1]))
        return _fake_segments(path, *a, **kw)

    monkeypatch.setattr(ovs_rooms, "room_segments_of", counted)
    a, b = _room(tmp_path, "train_a"), _room(tmp_path, "train_b")
    first = ovs_rooms.build_room_segments([a], _Enc(), frames=(12, 20), log=lambda s: None, encoder_id="enc1")
    assert calls == [("train_a", 12), ("train_a", 20)]
    both = ovs_rooms.build_room_segments([a, b], _Enc(), frames=(12, 20), log=lambda s: None, encoder_id="enc1")
    assert calls[2:] == [("train_b", 12), ("train_b", 20)]  # train_a came from the cache
    n = len(first)
    assert n == 6 and len(both) == 12
    np.testing.assert_array_equal(both.points[:first.offsets[-1]], first.points)
    np.testing.assert_array_equal(both.label[:n], first.label)
    np.testing.assert_allclose(both.clip_inst[:n].astype(np.float32), first.clip_inst.astype(np.float32))
    assert list(both.room) == [0] * 6 + [1] * 6 and both.rooms == ["train_a", "train_b"]
    # another encoder is another key: recomputed
    ovs_rooms.build_room_segments([a], _Enc(), frames=(12,), log=lambda s: None, encoder_id="enc2")
    assert calls[-1] == ("train_a", 12) and len(calls) == 5
    # so is another mask crop; the same crop again is cached
    for _ in range(2):
        ovs_rooms.build_room_segments([a], _Enc(), frames=(12,), log=lambda s: None, encoder_id="enc2",
                                      crop="context")
    assert len(calls) == 6


def test_room_count_takes_the_first_rooms_of_the_training_sequence(tmp_path):
    import json

    from core.scenegen.room_config import config_hash
    from core.train.clip3r_data import Clip3rDataConfig, room_configs

    cfgs = room_configs(Clip3rDataConfig(rooms=3))
    for c in cfgs:  # rendered-looking folders: scene.json, GT cloud and video present
        d = tmp_path / config_hash(c)
        d.mkdir()
        (d / "scene.json").write_text(json.dumps({"config": {"name": c.name, "libraries": list(c.libraries)}}))
        (d / "gt_cloud.npz").write_bytes(b"")
        (d / "video.mp4").write_bytes(b"")
    assert len(ovs_rooms.find_training_rooms(tmp_path)) == 3
    first2 = ovs_rooms.find_training_rooms(tmp_path, count=2)
    assert sorted(d.name for d in first2) == sorted(config_hash(c) for c in cfgs[:2])
    assert ovs_rooms.find_training_rooms(tmp_path, count=5) == ovs_rooms.find_training_rooms(tmp_path)  # only those rendered
