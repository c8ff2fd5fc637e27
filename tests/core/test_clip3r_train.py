"""CLIP3R training: data from a tiny rendered room, loss goes down, bit-exact resume, DDP init, CLI."""

import importlib.util
import json
import socket

import numpy as np
import pytest
import torch

from core.models.clip3r import load_checkpoint
from core.train.clip3r import Dist, TrainConfig, Trainer, setup_distributed
from core.train.clip3r import main as train_main
from core.scenegen.suite import assert_training_rooms
from core.train.clip3r_data import (
    Clip3rDataConfig,
    Clip3rWindows,
    build_dataset,
    collate,
    load_prepared,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="rendering needs the bpy module")

TINY = dict(enc_dim=32, enc_depth=2, enc_heads=2, dec_dim=24, dec_depth=2, dec_heads=2,
            dpt_layer_dims=(8, 8, 16, 16), dpt_feature_dim=16, dpt_hooks=(0, 1, 1, 2), retrieval_depth=1,
            num_scene_frames=2)
DC = Clip3rDataConfig(rooms=1, width=64, height=48, frames=4, samples=2, img_size=(32, 64), gt_points=2000,
                      room_overrides={"denoise": False, "num_objects": 10})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip3r_data")
    folder = build_dataset(DC, root=root / "prepared", scene_root=root / "scenes", log=lambda s: None)
    return folder, load_prepared(folder)


def _tc(**kw) -> TrainConfig:
    base = dict(model_overrides=TINY, i2p_steps=4, l2w_steps=3, batch_size=2, i2p_views=3, strides=(1,), warmup=1,
                lr=2e-3, log_every=1, ckpt_every=2)
    base.update(kw)
    return TrainConfig(**base)


def test_data_builder_on_a_rendered_room(data):
    folder, rooms = data
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["rooms"][0]["name"] == "train_0_0"
    r = rooms[0]
    assert r.images.shape == (4, 32, 64, 3) and r.images.dtype == np.uint8
    assert r.depth.shape == (4, 32, 64) and (r.depth > 0).mean() > 0.9
    assert r.patch_clip.shape == (4, 8, 384) and r.patch_valid.any()
    # one unit-norm compact-encoder descriptor per segment, every segment pixel has one
    assert r.seg_offset[-1] == len(r.seg_table) > 0
    assert np.allclose(np.linalg.norm(r.seg_table.astype(np.float32), axis=1), 1.0, atol=1e-2)
    for f in range(4):
        assert r.seg[f].max() == r.seg_offset[f + 1] - r.seg_offset[f]
    # 64x48 -> 64x32: crop 8 rows, so cy moves by 8 and fx is unchanged
    assert np.allclose(r.K[1, 2], 24 - 8) and np.allclose(r.K[0, 0], 26 / 36 * 64)
    # the same room prepared again comes from the cache
    assert build_dataset(DC, root=folder.parent, scene_root=folder.parent.parent / "scenes") == folder

    i2p = Clip3rWindows(rooms, "i2p", views=3, strides=(1,))
    item = i2p[0]
    k = int(item["keyframe"])
    assert item["images"].shape == (3, 3, 32, 64) and -1 <= item["images"].min() <= item["images"].max() <= 1
    # the keyframe's own GT points are its depth along the pixel rays; it sees all of itself
    kf_points, kf_valid = item["points"][k], item["valid"][k]  # window 0 = frames 0, 1, 2 (either way)
    assert np.array_equal(kf_valid, r.depth[1] > 0)
    assert np.allclose(kf_points[kf_valid][:, 2], r.depth[1][kf_valid], atol=1e-5)
    assert item["covis"][k].mean() > 0.95 and 0 <= item["covis"].min() and item["covis"].max() <= 1
    # neighbouring frames of a slow walk overlap a lot
    assert item["covis"].mean() > 0.3

    l2w = Clip3rWindows(rooms, "l2w", views=3, num_scene=2, strides=(1,))
    it = l2w[0]
    assert it["points_in"].shape == (3, 32, 64, 3) and it["void"].shape == (3, 8)
    # scene frames enter with their world points, the keyframe with camera-frame points at another scale
    assert np.allclose(it["points_in"][:2], it["points"][:2])
    assert not np.allclose(it["points_in"][2], it["points"][2])
    b = collate([l2w[0], l2w[1]])
    assert b["seg"].max() <= b["seg_table"].shape[0] and b["images"].shape == (2, 3, 3, 32, 64)


def test_test_library_is_refused():
    from core.scenegen.suite import test_suite

    with pytest.raises(AssertionError, match="test library"):
        assert_training_rooms(test_suite()[:1])


def test_a_few_steps_reduce_the_losses(data, tmp_path):
    _, rooms = data
    tr = Trainer(_tc(i2p_steps=8, l2w_steps=8), rooms, tmp_path / "run", progress=False, log=lambda s: None)
    final = tr.run()
    h = tr.history
    i2p = [r["loss"] for r in h if r["stage"] == "i2p"]
    l2w = [r["loss"] for r in h if r["stage"] == "l2w"]
    assert len(i2p) == 8 and len(l2w) == 8
    assert np.mean(i2p[-2:]) < np.mean(i2p[:2]) and np.mean(l2w[-2:]) < np.mean(l2w[:2])
    model, meta = load_checkpoint(final)
    assert model.cfg.img_size == (32, 64) and model.cfg.clip_injection
    assert json.loads(meta["train_config"])["i2p_steps"] == 8
    assert (tmp_path / "run" / "train.log").read_text().count("\n") == 16


def test_resume_continues_bit_exactly(data, tmp_path):
    _, rooms = data
    quiet = dict(progress=False, log=lambda s: None)
    straight = Trainer(_tc(), rooms, tmp_path / "a", **quiet).run()
    # interrupted twice: inside the I2P stage, then just after the stage switch
    assert Trainer(_tc(), rooms, tmp_path / "b", **quiet).run(stop_after=3) is None
    tr = Trainer(_tc(), rooms, tmp_path / "b", **quiet)
    assert tr.resume() and (tr.stage, tr.step) == (0, 3)
    assert tr.run(stop_after=2) is None
    tr = Trainer(_tc(), rooms, tmp_path / "b", **quiet)
    assert tr.resume() and (tr.stage, tr.step) == (1, 1)
    resumed = tr.run()
    a, b = load_checkpoint(straight)[0].state_dict(), load_checkpoint(resumed)[0].state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ablation_and_ddp_path_with_one_gloo_process(data, tmp_path, monkeypatch):
    import torch.distributed as dist

    _, rooms = data
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                     LOCAL_RANK="0").items():
        monkeypatch.setenv(k, v)
    d = setup_distributed(backend="gloo")
    try:
        assert d.enabled and d.world == 1 and d.main and dist.get_backend() == "gloo"
        tr = Trainer(_tc(i2p_steps=2, l2w_steps=2, clip_injection=False, precision="bf16"), rooms, tmp_path / "ddp",
                     dist=d, progress=False, log=lambda s: None)
        assert tr.model.i2p.clip_injection is None
        final = tr.run()
        assert final.is_file() and len(tr.history) == 4
    finally:
        dist.destroy_process_group()
    assert Dist().world == 1 and not Dist().enabled


def test_cli_subcommand(capsys):
    from core.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "clip3r", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--no-clip-injection" in out and "--time-budget-min" in out and "--resume" in out
    with pytest.raises(SystemExit):
        train_main(["--config", "huge"])


def test_stage_metrics_by_hand_and_on_a_rendered_room(data):
    from core.bench.clip3r_stages import evaluate_stages, i2p_depth_errors, l2w_errors
    from core.models.clip3r import CLIP3R

    gt = np.zeros((2, 2, 3))
    gt[..., 2] = [[1.0, 2.0], [4.0, 8.0]]
    valid = np.ones((2, 2), bool)
    # a prediction at another scale is perfect after the median scale
    assert i2p_depth_errors(gt * 3.0, gt, valid) == {"absrel": pytest.approx(0.0), "delta": 1.0}
    pred = gt.copy()
    pred[0, 0, 2] = 2.0  # median scale stays 1 (medians 3.0 and 3.0); one pixel 100 % off
    e = i2p_depth_errors(pred, gt, valid)
    assert e["absrel"] == pytest.approx(0.25) and e["delta"] == 0.75
    off = gt.copy()
    off[..., 0] += [[0.01, 0.07], [0.2, 0.5]]
    e = l2w_errors(off, gt, valid)
    assert e == {"median": pytest.approx(0.135), "within5": 0.25, "within10": 0.5}

    _, rooms = data
    torch.manual_seed(0)
    from core.models.clip3r import get_config

    model = CLIP3R(get_config("small", img_size=(32, 64), **TINY)).eval()
    out = evaluate_stages(model, rooms, windows=2, views=3, stride=1)
    r = out["rooms"]["train_0_0"]
    assert 0.0 <= r["i2p"]["delta"] <= 1.0 and r["i2p"]["absrel"] >= 0.0
    assert r["l2w"]["median"] > 0.0 and 0.0 <= r["l2w"]["within10"] <= 1.0
