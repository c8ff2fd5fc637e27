"""The ``clip3r`` geometry engine: end to end on a tiny video with a tiny random model, partials,
cancel, missing weights; the geometry helpers it relies on (fitting, poses, focal, F_oCLIP grid)."""

import numpy as np
import pytest
import torch
from video_fixtures import make_pan_video, pan_frames

from core.geometry import ENGINES, get_engine
from core.geometry.clip3r_engine import Clip3rEngine, Clip3rSettings, estimate_focal, pose_from_pointmap
from core.geometry.engine import Keyframe
from core.jobs import JobCancelled, JobContext, JobError
from core.models.clip3r import CLIP3R, get_config, save_checkpoint
from core.models.clip3r.preprocess import fit_geometry, fit_image, fit_intrinsics, patch_features, pixel_rays
from core.scene import SemanticScene

TINY = dict(img_size=(64, 96), enc_dim=32, enc_depth=2, enc_heads=2, dec_dim=24, dec_depth=2, dec_heads=2,
            dpt_layer_dims=(8, 8, 16, 16), dpt_feature_dim=16, dpt_hooks=(0, 1, 1, 2), retrieval_depth=1,
            num_scene_frames=2, window_init=3, window_incremental=5, buffer_size=4)
K_WORK = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = CLIP3R(get_config("small", **TINY))
    return save_checkpoint(model, tmp_path_factory.mktemp("clip3r") / "tiny.safetensors")


@pytest.fixture(autouse=True)
def _no_user_weights(monkeypatch, tmp_path):
    for k in ("OV3R_CLIP3R_WEIGHTS", "OV3R_SLAM3R_I2P", "OV3R_SLAM3R_L2W", "OV3R_CLIP3R_DEVICE", "OV3R_CLIP3R_WINDOW"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OV3R_CACHE", str(tmp_path / "cache"))  # no default weights there


def _keyframes(n: int = 8):
    return [Keyframe(f, 3 * i, 0.1 * i) for i, f in enumerate(pan_frames(n, 8.0))]


def test_engine_end_to_end_shapes_partials_and_features(weights):
    assert "clip3r" in ENGINES
    eng = get_engine("clip3r", weights=str(weights), clip_segments="none", partial_every=2)
    assert isinstance(eng, Clip3rEngine) and eng.device() == ("cuda" if torch.cuda.is_available() else "cpu")
    parts, stages = [], set()
    ctx = JobContext(progress_fn=lambda s, d, t: stages.add(s), partial_fn=parts.append)
    kfs = _keyframes(8)
    rec = eng.reconstruct(kfs, ctx, intrinsics=K_WORK)
    n = len(rec.points)
    assert n > 100 and rec.points.shape == (n, 3) and rec.points.dtype == np.float32
    assert rec.colors.shape == (n, 3) and rec.colors.dtype == np.uint8
    assert rec.confidence.shape == (n,) and 0 <= rec.confidence.min() and rec.confidence.max() <= 1
    assert rec.frame_id.min() >= 0 and rec.frame_id.max() < len(rec.cameras)
    cams = rec.cameras
    assert len(cams) == 8 and cams.world_from_camera.shape == (8, 4, 4) and cams.image_size == (320, 240)
    assert np.allclose(cams.intrinsics[0], K_WORK, atol=1e-3)  # given intrinsics come back in working pixels
    assert list(cams.frame_index) == [3 * i for i in range(8)]
    R = cams.world_from_camera[:, :3, :3].astype(np.float64)
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-4)
    # per-pixel CLIP3R features, pooled 4x4 on the 64x96 network image, one map per camera
    f = rec.extras["clip3r_features"]
    assert f.shape == (8, 384, 16, 24) and f.dtype == np.float16 and np.isfinite(f).all()
    g = rec.extras["clip3r_feature_geometry"]
    assert g["stride"] == 4 and g["net_size"] == (64, 96) and g["image_size"] == (320, 240)
    assert rec.extras["clip3r_conf"].shape == (8, 64, 96)
    # partial scenes while it runs (every 2 keyframes, not after the last)
    assert len(parts) == 3 and all(isinstance(p, SemanticScene) for p in parts)
    assert [len(p.cameras) for p in parts] == [2, 4, 6]
    for p in parts:
        p.validate()
    assert {"clip3r: encode", "clip3r: register", "fusion"} <= stages
    # the engine flushes subnormals only while it runs (scipy's cKDTree crashes under that flag)
    from scipy.spatial import cKDTree

    assert cKDTree(rec.points).query(rec.points[:10], k=1, workers=-1)[0].max() == 0


def test_pipeline_video_with_segments_and_cancel(weights, tmp_path, monkeypatch):
    from core.pipeline import ReconstructSettings, reconstruct_video

    monkeypatch.setenv("OV3R_CLIP3R_WEIGHTS", str(weights))
    video = make_pan_video(tmp_path / "pan.mp4", n=24, step=8.0)
    scene = reconstruct_video(video, JobContext(), ReconstructSettings(engine="clip3r", semantics=None))
    assert scene.metadata["engine"] == "clip3r" and len(scene.cameras) >= 3 and len(scene.points) > 100
    # F_oCLIP from classical segments + the compact encoder (the model has the CLIP injection)
    eng = get_engine("clip3r", clip_segments="classical")
    rec = eng.reconstruct(_keyframes(4), JobContext(), intrinsics=None)
    assert rec.extras["timings"]["segments"] > 0 and len(rec.cameras) == 4
    assert rec.cameras.intrinsics[0, 0, 0] > 0  # focal estimated from the point maps
    # cancel: honoured between windows
    ctx = JobContext()
    ctx.partial_fn = lambda s: ctx.cancel_event.set()
    with pytest.raises(JobCancelled):
        get_engine("clip3r", clip_segments="none", partial_every=1).reconstruct(_keyframes(6), ctx, K_WORK)


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(JobError, match="never downloads") as exc:
        get_engine("clip3r").reconstruct(_keyframes(3), JobContext())
    msg = str(exc.value)
    assert "ov3r train clip3r" in msg and "OV3R_CLIP3R_WEIGHTS" in msg and "OV3R_SLAM3R_I2P" in msg
    with pytest.raises(JobError, match="not found"):
        get_engine("clip3r", weights=str(tmp_path / "absent.safetensors")).model()
    with pytest.raises(JobError, match="both the I2P and the L2W"):
        get_engine("clip3r", slam3r_i2p=str(tmp_path / "i2p.pth")).model()
    with pytest.raises(JobError, match="at least 2 keyframes"):
        get_engine("clip3r").reconstruct(_keyframes(1), JobContext())


def test_settings_from_environment(monkeypatch, weights):
    monkeypatch.setenv("OV3R_CLIP3R_WEIGHTS", str(weights))
    monkeypatch.setenv("OV3R_CLIP3R_DEVICE", "cpu")
    st = Clip3rSettings.from_env()
    assert st.weights == str(weights) and st.device == "cpu"
    assert Clip3rSettings.from_env(weights="x.safetensors", device="meta").weights == "x.safetensors"


def test_precision_settings_and_bf16_autocast(weights):
    from core.geometry.clip3r_engine import resolve_precision
    from core.models.clip3r import load_checkpoint

    assert resolve_precision("fp32", "cpu") == (None, "fp32")
    assert resolve_precision("bf16", "cpu") == (torch.bfloat16, "bf16")
    assert resolve_precision("auto", "cpu")[1] in ("fp32", "bf16")
    with pytest.raises(JobError, match="precision"):
        resolve_precision("fp16", "cpu")
    model = load_checkpoint(weights)[0].eval()
    x = torch.randn(1, 3, 3, 64, 96)
    with torch.inference_mode():
        a = model.i2p(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = model.i2p(x)
    # the point heads run in fp32 under autocast; the transformers' bf16 moves points by well under 1 %
    assert b.points.dtype == torch.float32 and b.conf.dtype == torch.float32
    rel = (a.points - b.points).norm(dim=-1) / a.points.norm(dim=-1).clamp(min=1e-6)
    assert float(rel.median()) < 0.01


# -- geometry helpers ------------------------------------------------------------------------

def test_fit_keeps_intrinsics_exact():
    K = np.array([[500.0, 0, 321], [0, 500.0, 239], [0, 0, 1]])
    g = fit_geometry((640, 480), (160, 224))
    assert g.resized == (224, 168) and (g.x0, g.y0) == (0, 4)
    K2 = fit_intrinsics(K, (640, 480), (160, 224))
    X = np.array([0.3, -0.2, 2.0])
    u, v = (K @ X)[:2] / X[2]
    u2, v2 = (K2 @ X)[:2] / X[2]
    sx, sy = g.scale
    assert np.allclose([u2, v2], [sx * u - g.x0, sy * v - g.y0])
    img = np.zeros((480, 640, 3), np.uint8)
    assert fit_image(img, (160, 224)).shape == (160, 224, 3)
    assert fit_image(np.zeros((480, 640), np.uint16), (160, 224), nearest=True).shape == (160, 224)


def _random_view(seed=0):
    rng = np.random.default_rng(seed)
    K = np.array([[80.0, 0, 48], [0, 80.0, 32], [0, 0, 1]])
    depth = 2.0 + rng.random((64, 96)) * 0.5
    cam = depth[..., None] * pixel_rays(K, (64, 96))
    a = rng.normal(size=3) * 0.3
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(a).as_matrix()
    T[:3, 3] = rng.normal(size=3)
    world = cam @ T[:3, :3].T + T[:3, 3]
    return K, cam.astype(np.float32), world.astype(np.float32), T


def test_pose_from_pointmap_pnp_and_umeyama():
    K, cam, world, T = _random_view()
    mask = np.ones((64, 96), bool)
    pose, how = pose_from_pointmap(world, K, mask)
    assert how == "pnp" and np.allclose(pose, T, atol=1e-3)
    # no usable PnP (wrong intrinsics scale the pixels far off): Umeyama on the camera-frame points
    bad_K = K * np.array([[50], [50], [1]])
    pose, how = pose_from_pointmap(world, bad_K, mask, local=cam * 0.5, reproj_px=0.5)
    assert how == "umeyama" and np.allclose(pose[:3, :3], T[:3, :3], atol=1e-4)
    assert np.allclose(pose[:3, 3], T[:3, 3], atol=1e-3)


def test_focal_estimate():
    _, cam, _, _ = _random_view(1)
    f = estimate_focal(cam, np.ones((64, 96)), (64, 96))
    assert abs(f - 80.0) < 1e-3


def test_patch_features_grid():
    seg = np.zeros((32, 48), np.int64)
    seg[:16, :16] = 1  # patch (0, 0) fully segment 1
    seg[:16, 16:24] = 2  # patch (0, 1) half segment 2
    table = np.eye(2, 4, dtype=np.float32)
    feats, valid = patch_features(seg, table, 16)
    assert feats.shape == (6, 4) and valid.tolist() == [True, True, False, False, False, False]
    assert np.allclose(feats[0], table[0]) and np.allclose(feats[1], table[1])
    assert np.allclose(feats[2:], 0)


def test_foclip_encoder_is_the_one_the_checkpoint_was_trained_with(tmp_path, monkeypatch):
    from core.geometry.clip3r_engine import foclip_encoder_id, foclip_encoder_path
    from core.hashing import file_sha256
    from core.models.compact import DEFAULT_WEIGHTS

    v4 = DEFAULT_WEIGHTS.with_name("compact_v4.safetensors")
    sha = file_sha256(v4)[:16]
    assert foclip_encoder_id({"foclip_encoder": sha}) == sha
    assert foclip_encoder_path(sha) == v4  # not the shipped default: the model's own encoder
    assert foclip_encoder_path("0" * 16) is None and foclip_encoder_path(None) is None
    # a model trained on an encoder that no longer ships: a clear error with the way back, no fallback
    with pytest.raises(JobError, match=r"compact_v2\.safetensors no longer ships.*python -m core\.train\.compact"):
        foclip_encoder_path("e73025ff8f7d8863")
    # older checkpoints: the training data's meta.json in the cache
    monkeypatch.setenv("OV3R_CACHE", str(tmp_path))
    (tmp_path / "clip3r_data" / "abc").mkdir(parents=True)
    (tmp_path / "clip3r_data" / "abc" / "meta.json").write_text('{"encoder": "%s"}' % sha)
    assert foclip_encoder_id({"data": "abc"}) == sha and foclip_encoder_id({"data": "gone"}) is None
