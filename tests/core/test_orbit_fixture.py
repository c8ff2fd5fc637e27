"""The rendered orbit fixture: files, camera convention (checked against rendered masks), cache."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.scenegen import orbit as O

if importlib.util.find_spec("bpy") is None:  # rendered in a subprocess: no need to import it here
    pytest.skip("the bpy module is not installed", allow_module_level=True)
pytest.importorskip("av")

SMALL = O.OrbitConfig(width=160, height=120, frames=8, samples=4, gt_points=60_000, crf=18)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> O.OrbitFixture:
    # default: rendered in a subprocess (the path the lead / bench uses)
    return O.render_orbit(tmp_path_factory.mktemp("orbit"), SMALL)


def test_core_imports_without_bpy():
    code = "import sys, core.bench, core.scenegen.orbit, core.bench.metrics; assert 'bpy' not in sys.modules"
    root = Path(O.__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": str(root)})


def test_files_and_arrays(fixture: O.OrbitFixture):
    for p in (fixture.video_path, fixture.cameras_path, fixture.config_path, fixture.masks_path):
        assert p is not None and p.exists()
    F = SMALL.frames
    assert fixture.intrinsics.dtype == np.float32 and fixture.intrinsics.shape == (3, 3)
    assert fixture.world_from_camera.dtype == np.float32 and fixture.world_from_camera.shape == (F, 4, 4)
    assert fixture.gt_points.dtype == np.float32 and fixture.gt_points.shape == (SMALL.gt_points, 3)
    np.testing.assert_allclose(fixture.timestamps, np.arange(F) / SMALL.fps)
    K = fixture.intrinsics
    assert K[0, 2] == SMALL.width / 2 and K[1, 2] == SMALL.height / 2 and K[0, 0] == K[1, 1]
    for T in fixture.world_from_camera.astype(np.float64):
        R = T[:3, :3]
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-5)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(T[3], [0, 0, 0, 1])
    # the recorded poses are the planned path (read back from Blender's matrix_world)
    planned, look_at = O.camera_path(SMALL)
    np.testing.assert_allclose(fixture.world_from_camera, planned, atol=1e-5)
    # every object got samples; extent = bounding-box diagonal of the GT
    assert set(np.unique(fixture.gt_object_index)) == set(range(1, len(fixture.object_names) + 1))
    diag = np.linalg.norm(fixture.gt_points.max(0) - fixture.gt_points.min(0))
    assert fixture.extent == pytest.approx(diag, rel=0.01)
    np.testing.assert_allclose(np.linalg.norm(fixture.gt_normals, axis=1), 1.0, atol=1e-4)


def test_video_decodes(fixture: O.OrbitFixture):
    import av

    with av.open(str(fixture.video_path)) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "h264"
        assert st.codec_context.pix_fmt == "yuv420p"
    frames = fixture.read_frames()
    assert frames.shape == (SMALL.frames, SMALL.height, SMALL.width, 3)
    # well lit and textured: no black frames, no blown-out frames, strong local contrast
    assert 50 < frames.mean() < 220
    assert (frames < 8).mean() < 0.01 and (frames > 250).mean() < 0.05
    grad = np.abs(np.diff(frames.astype(np.float32).mean(-1), axis=2))
    assert grad.mean() > 4.0


def _visible_agreement(points, owner, K, T, mask) -> tuple:
    """Z-buffer the projected GT points; fraction whose object id matches the rendered mask."""
    h, w = mask.shape
    uv, z = O.project_points(points, K, T)
    ok = (z > 0.05) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    if ok.sum() < 100:
        return 0.0, int(ok.sum())
    u = uv[ok, 0].astype(int)
    v = uv[ok, 1].astype(int)
    zz, oo = z[ok], owner[ok]
    pix = v * w + u
    order = np.lexsort((zz, pix))  # by pixel, nearest first
    first = np.ones(len(order), bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    sel = order[first]
    return float(np.mean(mask.ravel()[pix[sel]] == oo[sel])), int(len(sel))


def test_camera_convention_matches_rendered_masks(fixture: O.OrbitFixture):
    masks = fixture.read_masks()
    assert masks.shape == (SMALL.frames, SMALL.height, SMALL.width)
    assert (masks > 0).mean() > 0.5  # mostly scene, not background
    K = fixture.intrinsics
    pts, owner = fixture.gt_points, fixture.gt_object_index
    for i in range(fixture.num_frames):
        T = fixture.world_from_camera[i]
        good, n = _visible_agreement(pts, owner, K, T, masks[i])
        assert n > 2000, n
        assert good > 0.9, (i, good)
        # negative controls: Blender's raw matrix (no Y/Z flip) or an upside-down image fail
        bad_flip, _ = _visible_agreement(pts, owner, K, O.blender_to_opencv(T), masks[i])
        bad_updown, _ = _visible_agreement(pts, owner, K, T, masks[i][::-1])
        assert bad_flip < 0.6 and bad_updown < 0.6, (bad_flip, bad_updown)


def test_centre_ray_hits_look_at(fixture: O.OrbitFixture):
    K = fixture.intrinsics
    for T, target in zip(fixture.world_from_camera, fixture.look_at):
        uv, z = O.project_points(target[None], K, T)
        np.testing.assert_allclose(uv[0], [SMALL.width / 2, SMALL.height / 2], atol=0.05)
        assert 1.5 < z[0] < 4.0
    # the image centre sees one of the objects (not the walls / floor far behind)
    masks = fixture.read_masks()
    centre = masks[:, SMALL.height // 2, SMALL.width // 2]
    assert (centre > 3).mean() > 0.5, centre  # indices 1..3 are floor and walls


def test_cache_is_atomic_and_reused(tmp_path: Path):
    cfg = O.OrbitConfig(width=64, height=48, frames=2, samples=2, gt_points=1000, masks=False)
    fx = O.cached_orbit(cfg, cache_root=tmp_path)
    assert fx.root == tmp_path / f"orbit-{O.config_hash(cfg)}"
    assert fx.masks_path is None and fx.read_frames().shape == (2, 48, 64, 3)
    mtime = fx.video_path.stat().st_mtime_ns
    again = O.cached_orbit(cfg, cache_root=tmp_path)
    assert again.video_path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [fx.root.name]  # no temp dirs left
    assert O.config_hash(cfg) != O.config_hash(O.OrbitConfig(width=64, height=48, frames=3))


def test_config_validation():
    with pytest.raises(ValueError):
        O.OrbitConfig(width=161)
    with pytest.raises(ValueError):
        O.OrbitConfig(frames=0)
    cfg = O.OrbitConfig(seed=3)
    assert O.OrbitConfig.from_dict({**cfg.__dict__, "unknown": 1}) == cfg
