"""OVS training: the dataset builder (training libraries only), the OBJ / MTL reader,
the segment sampler, a few training steps reduce the loss, resume == uninterrupted, fp16 weights.
Tiny models and fake data; about 10 s on one CPU thread."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from ovs_tiny import TINY, D
from ovs_tiny import ColourEncoder as TinyEncoder
from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread

from core.models.ovs import OvsFusion, load_checkpoint
from core.train.ovs import SampleConfig, SegmentSampler, augment_points, build_parser, train
from core.train.ovs_data import (
    TEXT_CLASSES,
    OvsData,
    read_mtl,
    read_obj,
    sample_mesh,
    structure_image,
    structure_points,
)

# ---------------------------------------------------------------------------------------- OBJ / MTL

def test_obj_mtl_reader_and_area_uniform_samples(tmp_path):
    from PIL import Image

    (tmp_path / "m.mtl").write_text("newmtl red\nKd 1 0 0\nnewmtl tex\nKd 1 1 1\nmap_Kd -s 1 1 1 t.png\n")
    Image.fromarray(np.full((4, 4, 3), (0, 255, 0), np.uint8)).save(tmp_path / "t.png")
    # a unit quad (red, area 1) and a 2x1 quad (textured green, area 2) with negative indices
    (tmp_path / "m.obj").write_text(
        "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl red\nf 1 2 3 4\n"
        "v 0 0 1\nv 2 0 1\nv 2 0 2\nv 0 0 2\nusemtl tex\nf -4/1 -3/2 -2/3 -1/4\n")
    mesh = read_obj(tmp_path / "m.obj")
    assert mesh.tris.shape == (4, 3) and mesh.materials == ["red", "tex"] and mesh.mtllibs == ["m.mtl"]
    mats = read_mtl(tmp_path / "m.mtl")
    assert mats["tex"]["map_kd"] == "t.png" and np.allclose(mats["red"]["kd"], [1, 0, 0])
    xyz, nrm, rgb = sample_mesh(mesh, 3000, np.random.default_rng(0), mats, tmp_path)
    on_tex = xyz[:, 2] >= 1 - 1e-9
    assert abs(on_tex.mean() - 2 / 3) < 0.04  # area-uniform
    assert np.allclose(rgb[on_tex], [0, 1, 0]) and np.allclose(rgb[~on_tex], [1, 0, 0])
    assert np.allclose(np.abs(nrm[on_tex, 1]), 1) and np.allclose(np.abs(nrm[~on_tex, 2]), 1)


def test_structure_generators():
    rng = np.random.default_rng(0)
    for i, cls in enumerate(("wall", "floor", "ceiling", "door", "window")):
        img, m = structure_image(cls, rng, None, 64)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and m.shape == (64, 64) and m.sum() > 50
        p = structure_points(cls, rng, 256)
        assert p.shape == (256, 9) and np.isfinite(p).all()
        extent = np.ptp(p[:, :3], 0)
        if cls in ("floor", "ceiling"):
            assert extent[2] < 0.05  # horizontal
        elif cls in ("door", "window"):
            assert extent[2] > 0.5 and min(extent[:2]) < 0.1  # vertical


# ---------------------------------------------------------------------------------------- dataset builder

def _fake_renders(ids, views=3, R=48):
    from core.train.compact_data import CompactData

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:R, :R]
    rgba, obj = [], []
    for o in range(len(ids)):
        for _ in range(views):
            a = np.zeros((R, R, 4), np.uint8)
            r = rng.integers(8, 20)
            a[(yy - R / 2) ** 2 + (xx - R / 2) ** 2 < r * r] = np.r_[rng.integers(0, 255, 3), 255]
            rgba.append(a)
            obj.append(o)
    return CompactData(np.stack(rgba), np.array(obj, np.int32), np.zeros((len(obj), 3), np.float32),
                       [{"id": e.id, "name": e.name, "library": e.library, "class": c} for e, c in ids])


def _catalog_or_skip():
    from core.scenegen.catalog import load_catalog

    if not load_catalog():
        pytest.skip("sweethome3d-furniture not installed")


def test_dataset_builder_on_three_models_training_only(tmp_path):
    _catalog_or_skip()
    from core.scenegen.catalog import TEST_LIBRARY, load_catalog
    from core.scenegen.taxonomy import classify_entry
    from core.train.compact_data import select_entries
    from core.train.ovs_data import OvsDataConfig, build_ovs_data, load_ovs_data

    train_entries = select_entries("train")
    small = sorted((e for e in train_entries if classify_entry(e)), key=lambda e: e.width * e.depth)[:2]
    small.append(next(e for e in train_entries if classify_entry(e) is None and not e.door_or_window))
    ids = [(e, classify_entry(e)) for e in small]
    cfg = OvsDataConfig(n_points=256, struct_images=2, textures=False)
    data = build_ovs_data(small, _fake_renders(ids), TinyEncoder(), cfg, log=lambda m: None)
    assert data.points.shape == (3, 256, 9) and data.inst.shape == (3, 3, D) == data.scene.shape == data.inst_aug.shape
    assert list(data.nview) == [3, 3, 3] and data.struct_inst.shape == (10, D) and data.struct_scene.shape == (10, D)
    assert data.label[0] == TEXT_CLASSES.index(ids[0][1]) and data.label[2] == -1
    assert sorted(set(data.struct_label)) == [TEXT_CLASSES.index(c) for c in ("wall", "floor", "ceiling", "door",
                                                                               "window")]
    assert all(o["library"] != TEST_LIBRARY for o in data.objects)
    xyz = data.points[..., :3].astype(np.float32)
    for i, e in enumerate(small):  # placed at the catalog size, base on z = 0
        assert np.allclose(np.ptp(xyz[i], 0), e.size_m, rtol=0.1, atol=0.01) and abs(xyz[i, :, 2].min()) < 1e-3
    assert np.allclose(np.linalg.norm(data.points[..., 6:9].astype(np.float32), axis=-1), 1, atol=1e-2)
    path = data.save(tmp_path / "d" / "data.npz")
    again = load_ovs_data(path)
    assert again.objects == data.objects and np.array_equal(again.points, data.points)
    with pytest.raises(AssertionError):  # a test-library model never enters the training data
        test_e = load_catalog([TEST_LIBRARY])[0]
        build_ovs_data(small[:1] + [test_e], _fake_renders([(small[0], ids[0][1]), (test_e, None)]), TinyEncoder(),
                       cfg, log=lambda m: None)


# ---------------------------------------------------------------------------------------- sampler / training

def _fake_ovs_data(n_models=12, views=4, n=256, seed=0) -> OvsData:
    """Models of 3 classes with distinct shapes / colours; their view descriptors sit near the class text."""
    rng = np.random.default_rng(seed)
    text = _text()
    classes = [TEXT_CLASSES.index(c) for c in ("chair", "table", "lamp")]
    pts, inst, lab = [], [], []
    for m in range(n_models):
        c = m % 3
        u = rng.uniform(-0.5, 0.5, (n, 3)) * [[0.5, 0.5, 1.0], [1.2, 0.8, 0.1], [0.1, 0.1, 1.5]][c]
        u[:, 2] -= u[:, 2].min()
        col = np.tile([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]][c], (n, 1))
        nrm = rng.normal(size=(n, 3))
        pts.append(np.concatenate([u, col, nrm / np.linalg.norm(nrm, axis=1, keepdims=True)], 1))
        # descriptors: the class text + strong noise (a weak "image encoder")
        e = text[classes[c]].numpy()[None] + rng.normal(0, 0.35, (views, D))
        inst.append(e / np.linalg.norm(e, axis=1, keepdims=True))
        lab.append(classes[c] if m < n_models - 2 else -1)
    inst = np.stack(inst).astype(np.float16)
    s_lab = np.repeat([TEXT_CLASSES.index(c) for c in ("wall", "floor")], 3)
    s_inst = (text[s_lab].numpy() + rng.normal(0, 0.3, (6, D))).astype(np.float16)
    return OvsData(points=np.stack(pts).astype(np.float16), inst=inst, inst_aug=inst, scene=inst,
                   nview=np.full(n_models, views), label=np.array(lab), struct_label=s_lab,
                   objects=[{"id": f"x#{i}", "name": "x", "library": "Fake", "class": None} for i in range(n_models)],
                   struct_inst=s_inst, struct_scene=s_inst)


def _text() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.nn.functional.normalize(torch.randn(len(TEXT_CLASSES), D, generator=g), dim=-1)


def test_augment_points_and_sampler_batches():
    data = _fake_ovs_data()
    rng = np.random.default_rng(0)
    p = augment_points(data.points[0].astype(np.float32), rng)
    assert p.shape[1] == 9 and 32 <= len(p) <= 256 * 1.3 and np.isfinite(p).all()
    assert p[:, 3:6].min() >= 0 and p[:, 3:6].max() <= 1
    s = SegmentSampler(data, np.arange(10), np.arange(6), SampleConfig(n_points=64), seed=0)
    b = s.batch(16, "B")
    assert b["points"].shape == (16, 64, 9) and b["point_mask"].shape == (16, 64)
    assert b["clip_inst"].shape == (16, D) == b["clip_scene"].shape == b["target"].shape
    torch.testing.assert_close(b["clip_inst"].norm(dim=-1), torch.ones(16))
    assert (b["label"] >= 0).all()  # stage B: labelled only
    n = b["points"][..., 6:9][b["point_mask"]].norm(dim=-1)
    torch.testing.assert_close(n, torch.ones_like(n), atol=1e-4, rtol=0)  # PCA normals, as at inference
    s2 = SegmentSampler(data, np.arange(10), np.arange(6), SampleConfig(n_points=64), seed=0)
    assert torch.equal(s2.batch(16, "B")["points"], b["points"])  # seeded


def _args(tmp_path, *extra):
    a = build_parser().parse_args(["--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
                                   "--steps-a", "6", "--steps-b", "8", "--batch", "12", "--points", "64",
                                   "--ckpt-every", "3", "--log-every", "1", "--eval-every", "2", "--val-size", "24",
                                   "--threads", "1", "--quiet", "--val-frac", "0.25", "--batch-b", "16",
                                   "--bank-aug", "2", "--bank-struct", "3", *extra])
    a.argv = []
    return a


def test_training_reduces_the_loss_and_writes_fp16_weights(tmp_path):
    data = _fake_ovs_data()
    a = _args(tmp_path, "--steps-a", "15", "--steps-b", "15", "--lr-a", "3e-3", "--lr-b", "3e-3",
              "--pe-lr-mult", "0.3")  # stage B also trains the point encoder (the default freezes it)
    out = train(a, data=data, fusion_cfg=TINY, text=_text())
    hist = [json.loads(line) for line in (tmp_path / "work" / "train_log.jsonl").read_text().splitlines()]
    la = [h["loss"] for h in hist if h["msg"].startswith("stage A")]
    lb = [h["loss"] for h in hist if h["msg"].startswith("stage B")]
    assert len(la) == 15 and len(lb) == 15
    assert np.mean(la[-4:]) < np.mean(la[:4]) and np.mean(lb[-4:]) < np.mean(lb[:4])
    ck = load_checkpoint(out, "fusion")
    assert all(v.dtype == torch.float32 for v in ck.state.values())  # fp16 on disk, float32 back
    assert json.loads(ck.metadata["trained_paths"]) == ["clip_inst", "clip_scene", "points"]
    assert float(ck.metadata["logit_scale"]) > 0 and "val" in ck.metadata
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        assert f.get_tensor("gamma").dtype == torch.float16
    m = OvsFusion.from_pretrained(out)
    assert m.cfg == dataclasses.replace(TINY, point=dataclasses.replace(TINY.point, n_points=64))
    assert (tmp_path / "work" / "point_encoder_stage_a.safetensors").is_file()


def test_resume_gives_the_state_of_an_uninterrupted_run(tmp_path):
    """Default recipe: stage B on the point bank of the frozen stage-A encoder (rebuilt on resume)."""
    data = _fake_ovs_data()
    full = train(_args(tmp_path / "full", "--full-precision"), data=data, fusion_cfg=TINY, text=_text())
    # interrupted twice (once in stage A, once in stage B), resumed each time
    a1 = _args(tmp_path / "cut", "--full-precision")
    a1.stop_after = 4
    train(a1, data=data, fusion_cfg=TINY, text=_text())
    st = torch.load(tmp_path / "cut" / "work" / "checkpoint.pt", weights_only=True)
    assert st["stage"] == "A" and st["step"] == 4
    a2 = _args(tmp_path / "cut", "--full-precision", "--resume")
    a2.stop_after = 5
    train(a2, data=data, fusion_cfg=TINY, text=_text())
    st = torch.load(tmp_path / "cut" / "work" / "checkpoint.pt", weights_only=True)
    assert st["stage"] == "B" and st["step"] == 9
    resumed = train(_args(tmp_path / "cut", "--full-precision", "--resume"), data=data, fusion_cfg=TINY, text=_text())
    s_full, s_res = load_checkpoint(full).state, load_checkpoint(resumed).state
    assert s_full.keys() == s_res.keys()
    for k in s_full:
        assert torch.equal(s_full[k], s_res[k]), k
    m_full, m_res = load_checkpoint(full).metadata, load_checkpoint(resumed).metadata
    assert m_full["logit_scale"] == m_res["logit_scale"] and m_full["val"] == m_res["val"]
    assert m_full["point_encoder_in_stage_b"] == "frozen (point bank)"
    pe_a = load_checkpoint(tmp_path / "full" / "work" / "point_encoder_stage_a.safetensors").state
    for k, v in pe_a.items():  # frozen in stage B
        assert torch.equal(v, s_full["point_encoder." + k]), k


def test_precomputed_point_features_equal_the_points_path():
    """Stage B's point bank feeds the fusion the frozen encoder's outputs: same function as points."""
    torch.manual_seed(0)
    m = OvsFusion(TINY).eval()
    with torch.no_grad():
        m.gamma.fill_(1.0)
    g = torch.Generator().manual_seed(1)
    ci, cs = torch.randn(5, D, generator=g), torch.randn(5, D, generator=g)
    pts, msk = torch.randn(5, 64, 9, generator=g), torch.ones(5, 64, dtype=torch.bool)
    msk[3] = False  # a segment without points
    with torch.no_grad():
        want = m(ci, cs, None, pts, msk)
        feats = torch.zeros(5, D)
        feats[msk.any(1)] = m.point_encoder(pts[msk.any(1)], msk[msk.any(1)])
        got = m(ci, cs, point_feats=feats, point_present=msk.any(1))
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="not both"):
        m(ci, cs, None, pts, msk, point_feats=feats)


def _fake_rooms(n=16, seed=0):
    from core.train.ovs_rooms import RoomSegments

    rng = np.random.default_rng(seed)
    text = _text().numpy()
    lab = np.array([TEXT_CLASSES.index(c) for c in ("wall", "floor", "chair", "table")] * (n // 4))
    pts = [np.concatenate([rng.uniform(0, 1, (k, 3)), np.full((k, 3), 0.5)], 1)  # xyz, rgb
           for k in rng.integers(40, 120, n)]
    ci = text[lab] + rng.normal(0, 0.3, (n, D))
    return RoomSegments(np.concatenate(pts).astype(np.float16), np.cumsum([0] + [len(p) for p in pts]),
                        ci.astype(np.float16), ci.astype(np.float16), lab, np.ones(n, np.float32),
                        np.arange(n) % 2, ["train_a", "train_b"])


def test_room_segments_in_the_sampler_and_training(tmp_path):
    data, rooms = _fake_ovs_data(), _fake_rooms()
    s = SegmentSampler(data, np.arange(10), np.arange(6), SampleConfig(n_points=64, p_room=1.0), 0, rooms,
                       np.flatnonzero(rooms.room == 0))
    b = s.batch(8, "B")
    assert set(b["label"].tolist()) <= set(rooms.label.tolist()) and b["points"].shape == (8, 64, 9)
    assert s.struct_by_cls == {}  # real structure segments replace the procedural ones
    out = train(_args(tmp_path, "--p-room", "0.5", "--keep-best"), data=data, fusion_cfg=TINY, text=_text(),
                rooms=rooms)
    meta = load_checkpoint(out).metadata
    assert meta["rooms"] == "given" and (tmp_path / "work" / "best.pt").is_file()
    assert int(meta["kept_step"]) in (8, 10, 12, 14)  # a stage-B evaluation step (every 2 steps after 6 of A)
    log = (tmp_path / "work" / "train_log.jsonl").read_text()
    assert '"val_rooms": ["train_b"]' in log  # validation on a held-out room


def test_rooms_of_the_test_library_are_rejected():
    from core.train.ovs_rooms import _check_training_room

    _catalog_or_skip()
    with pytest.raises(AssertionError):
        _check_training_room({"config": {"name": "test_living", "libraries": ["BlendSwap-CC-0"]}}, {"instances": []})
    from core.scenegen.splits import training_libraries

    libs = list(training_libraries())
    with pytest.raises(AssertionError):
        _check_training_room({"config": {"name": "train_x", "libraries": libs}},
                             {"instances": [{"model_id": "x", "library": "BlendSwap-CC-0"}]})
    _check_training_room({"config": {"name": "train_x", "libraries": libs}}, {"instances": [{"model_id": None}]})


def test_validation_reports_balanced_accuracy():
    from core.train.ovs import evaluate

    text = _text()
    lab = torch.tensor([0, 0, 0, 1])
    ci = torch.nn.functional.normalize(text[torch.zeros(4, dtype=torch.long)], dim=-1)  # all say class 0
    batch = {"label": lab, "clip_inst": ci, "clip_scene": ci}
    v = evaluate(OvsFusion(TINY), batch, text, point_feats=torch.zeros(4, TINY.point.dim))
    assert v["mean"] == pytest.approx(0.75)  # 3 of 4 segments right
    assert v["mean_bal"] == pytest.approx(0.5)  # class 0 all right, class 1 all wrong
    assert 0.0 <= v["fused_bal"] <= 1.0
