import json
import zipfile

import numpy as np
import pytest

from ov3r.core.export import read_ply_vertices, write_ply
from ov3r.core.scene import Cameras, SceneFormatError, SemanticScene, load_scene, save_scene


def make_scene(n=100, m=3, seed=0) -> SemanticScene:
    rng = np.random.default_rng(seed)
    k = np.tile(np.array([[200, 0, 160], [0, 200, 120], [0, 0, 1]], np.float32), (m, 1, 1))
    pose = np.tile(np.eye(4, dtype=np.float32), (m, 1, 1))
    pose[:, :3, 3] = rng.normal(size=(m, 3))
    cams = Cameras(k, pose, np.arange(m) / 10.0, np.arange(m, dtype=np.int32) * 5, (320, 240))
    scene = SemanticScene.from_points(
        rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3)), rng.random(n), rng.integers(0, m, n), cams,
        {"engine": "test", "video": {"name": "room.mp4"}},
    )
    return scene


def test_roundtrip_is_exact(tmp_path):
    scene = make_scene()
    path = save_scene(scene, tmp_path / "a scène ☕.ov3r.npz")
    back = load_scene(path)
    for name in ("points", "colors", "confidence", "segment_id", "frame_id"):
        a, b = getattr(scene, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.array_equal(scene.cameras.world_from_camera, back.cameras.world_from_camera)
    assert back.cameras.image_size == (320, 240)
    assert back.metadata["engine"] == "test" and back.metadata["version"] == 1
    assert back.segments.label == []


def test_foreign_and_corrupt_files_give_one_clear_error(tmp_path):
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(SceneFormatError, match="not an Ov3R scene"):
        load_scene(tmp_path / "foreign.npz")
    (tmp_path / "garbage.npz").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(SceneFormatError, match="not an Ov3R scene"):
        load_scene(tmp_path / "garbage.npz")
    with pytest.raises(SceneFormatError, match="no such scene"):
        load_scene(tmp_path / "missing.npz")


def _rewrite(path, out, **changes):
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data.update(changes)
    np.savez(out, **data)
    return out


def test_wrong_version_shape_and_dtype(tmp_path):
    path = save_scene(make_scene(), tmp_path / "s.ov3r.npz")
    with np.load(path) as z:
        meta = json.loads(z["__meta__"].tobytes())
    meta["version"] = 99
    bad = _rewrite(path, tmp_path / "v.npz", __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    with pytest.raises(SceneFormatError, match="unsupported SemanticScene version 99"):
        load_scene(bad)
    bad = _rewrite(path, tmp_path / "shape.npz", colors=np.zeros((5, 3), np.uint8))
    with pytest.raises(SceneFormatError, match="'colors' has shape"):
        load_scene(bad)
    bad = _rewrite(path, tmp_path / "dtype.npz", points=np.zeros((100, 3), np.int64))
    with pytest.raises(SceneFormatError, match="'points' has dtype"):
        load_scene(bad)
    bad = _rewrite(path, tmp_path / "range.npz", frame_id=np.full(100, 7, np.int32))
    with pytest.raises(SceneFormatError, match="frame_id"):
        load_scene(bad)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert "points.npy" in names


def test_ply_export_roundtrip(tmp_path):
    scene = make_scene(n=50)
    scene.segment_id[:10] = 0
    out = write_ply(scene, tmp_path / "out.ply")
    v = read_ply_vertices(out)
    assert len(v) == 50
    assert np.array_equal(np.stack([v["x"], v["y"], v["z"]], 1), scene.points)
    assert np.array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), scene.colors)
    assert np.array_equal(v["segment_id"], scene.segment_id)
    assert np.array_equal(v["frame_id"], scene.frame_id)
