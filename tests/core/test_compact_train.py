"""The compact training loop runs, checkpoints, resumes and writes loadable weights (tiny fake data)."""

import json

import numpy as np

from core.models.compact import ImageEncoder
from core.train.compact import _targets, build_parser, object_classes, train
from core.train.compact_data import CompactData


def _fake_data(n_obj=6, views=3, R=48):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:R, :R]
    rgba, obj = [], []
    for o in range(n_obj):
        for _ in range(views):
            a = np.zeros((R, R, 4), np.uint8)
            r = rng.integers(8, 20)
            m = (yy - R / 2) ** 2 + (xx - R / 2) ** 2 < r * r if o % 2 else (abs(yy - R / 2) < r) & (abs(xx - R / 2) < r)
            a[m] = np.r_[rng.integers(0, 255, 3), 255]
            rgba.append(a)
            obj.append(o)
    classes = ["chair", "table", "chair", None, "lamp", "sofa"]
    objects = [{"id": f"x#{i}", "name": f"thing {i}", "category": "", "library": "Fake", "class": classes[i]}
               for i in range(n_obj)]
    return CompactData(np.stack(rgba), np.array(obj, np.int32), np.zeros((len(obj), 3), np.float32), objects)


def test_targets_positives_and_synonym_weights():
    data = _fake_data()
    cls = object_classes()
    key = [o["name"] for o in data.objects]
    names, tgt, w = _targets(np.array([0, 2, 3]), data.objects, cls, key)
    C = len(cls)
    assert names == ["thing 0", "thing 2", "thing 3"]
    assert tgt[0, cls.index("chair")] == 1 and tgt[0, C + 0] == 1 and tgt[0, C + 1] == 0
    assert w[0, C + 1] == 0  # another chair's name: ignored, not a negative
    assert w[2, :C].sum() == 0 and tgt[2, C + 2] == 1  # unlabelled: names only


def test_train_resume_and_export(tmp_path):
    data = _fake_data()
    args = build_parser().parse_args(["--out", str(tmp_path / "w"), "--work-dir", str(tmp_path / "run"), "--epochs", "1",
                                      "--steps", "2", "--batch", "6", "--size", "32", "--threads", "1",
                                      "--backgrounds", "4"])
    out = train(args, data=data)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    args2 = build_parser().parse_args(["--out", str(tmp_path / "w"), "--work-dir", str(tmp_path / "run"), "--epochs",
                                       "2", "--steps", "2", "--batch", "6", "--size", "32", "--threads", "1",
                                       "--backgrounds", "4", "--resume"])
    out = train(args2, data=data)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert any(r["msg"].startswith("resumed from epoch 1") for r in log)
    assert any(r["msg"] == "epoch 2/2" and r["step"] == 4 for r in log)
    enc = ImageEncoder.from_pretrained(out, device="cpu")
    e = enc.encode(data.rgba[:2, :, :, :3], data.rgba[:2, :, :, 3] > 0)
    assert e.shape == (2, 384)


def _fake_scene_crops(R=48):
    from core.train.compact_scene_data import SceneCrops

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (6, R, R, 3)).astype(np.uint8)
    mask = np.zeros((6, R, R), bool)
    mask[:, 10:30, 12:40] = True
    objects = [{"id": "scene:r/1", "name": "wall", "category": "wall", "library": "structure", "class": "wall"},
               {"id": "scene:r/5", "name": "oak chair", "category": "chair", "library": "Fake", "class": "chair"}]
    return SceneCrops(rgb, mask, np.array([0, 0, 0, 1, 1, 1], np.int32), objects)


def test_train_with_scene_crops_learns_structure_classes(tmp_path):
    """Half of each batch from in-scene crops; the class texts gain wall / floor / ceiling / door / window."""
    args = build_parser().parse_args(["--out", str(tmp_path / "w"), "--work-dir", str(tmp_path / "run"), "--epochs",
                                      "1", "--steps", "2", "--batch", "8", "--size", "32", "--threads", "1",
                                      "--backgrounds", "4", "--scene-frac", "0.5"])
    train(args, data=_fake_data(), scene=_fake_scene_crops())
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert any(r["msg"] == "scene crops" and r["crops"] == 6 and r["instances"] == 2 for r in log)
    assert any(r["msg"] == "epoch 1/1" and r["step"] == 2 for r in log)


def test_augment_context_keeps_the_surroundings():
    from core.train.compact_aug import augment_context

    crops = _fake_scene_crops()
    x = augment_context(crops.rgb[0], crops.mask[0], np.random.default_rng(0), 32)
    assert x.shape == (4, 32, 32) and np.isfinite(x.numpy()).all()


def test_train_effnet_backbone_saves_head_conse_texts_and_provenance(tmp_path):
    """The ImageNet backbone trains like the others: the file names the installed checkpoint's
    hash, holds the ConSE class-name texts the trainer embedded, and no backbone tensor."""
    from safetensors import safe_open

    from core.hashing import file_sha256
    from core.models.pretrained.efficientnet_lite import backbone_weights_path

    args = build_parser().parse_args(["--out", str(tmp_path / "w"), "--work-dir", str(tmp_path / "run"), "--epochs", "1",
                                      "--steps", "1", "--batch", "4", "--size", "64", "--threads", "1",
                                      "--backgrounds", "4", "--backbone", "effnet_lite2"])
    out = train(args, data=_fake_data())
    with safe_open(str(out), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())
        texts = f.get_tensor("conse_text").float()
    assert meta["backbone_sha256"] == file_sha256(backbone_weights_path())
    assert json.loads(meta["config"])["backbone"] == "effnet_lite2"
    assert not any(k.startswith("backbone.") for k in keys)
    assert texts.shape == (1000, 384) and np.allclose(texts.norm(dim=1).numpy(), 1.0, atol=1e-2)
    enc = ImageEncoder.from_pretrained(out, device="cpu")
    assert enc.encode(_fake_data().rgba[:2, :, :, :3]).shape == (2, 384)


def _cached_args(tmp_path, *extra):
    from core.train.compact_cached import build_parser as cached_parser

    return cached_parser().parse_args(["--out", str(tmp_path / "w"), "--work-dir", str(tmp_path / "run"), "--backbone",
                                       "centernet", "--size", "64", "--object-crops", "12", "--scene-crops", "6",
                                       "--batch", "8", "--backgrounds", "4", "--threads", "1", "--steps", "4",
                                       "--head-batch", "8", "--warmup", "2", "--log-every", "2", "--name", "c.safetensors",
                                       *extra])


def test_cached_trainer_featurizes_once_and_writes_loadable_weights(tmp_path):
    """Stage 1 caches one feature row per augmented crop (object views + in-scene crops, targets
    into the combined object list); a second run reuses the chunks; the head's weights load."""
    from safetensors import safe_open

    from core.train.compact_cached import load_features, run

    data, scene = _fake_data(), _fake_scene_crops()
    out = run(_cached_args(tmp_path), data=data, scene=scene)
    folders = list((tmp_path / "run" / "features").iterdir())
    assert len(folders) == 1
    (folders[0] / "chunk_0001.tmp.npz").write_bytes(b"a killed run's partial chunk")
    feat, obj = load_features(folders[0])
    assert feat.shape[0] == 18 and feat.dtype == np.float16 and np.isfinite(feat.astype(np.float32)).all()
    n_data = len(data.objects)
    assert (obj[:12] < n_data).all() and (obj[12:] >= n_data).all() and obj.max() < n_data + len(scene.objects)
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert int(meta["feature_crops"]) == 18 and meta["feature_key"] == folders[0].name
    assert json.loads(meta["config"])["backbone"] == "centernet"
    enc = ImageEncoder.from_pretrained(out, device="cpu")
    assert enc.encode(data.rgba[:2, :, :, :3], data.rgba[:2, :, :, 3] > 0).shape == (2, 384)

    run(_cached_args(tmp_path, "--name", "c2.safetensors"), data=data, scene=scene)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert sum(r["msg"].startswith("features chunk") for r in log) == 1  # the second run featurized nothing


def test_cached_head_training_learns_separable_features(tmp_path):
    """On features that carry the class (a prototype per class + noise) the head's training
    accuracy against the class prompts climbs far above chance (1 / #classes)."""
    import torch

    from core.models.compact.build import build_net
    from core.models.compact.net import CompactConfig
    from core.semantics.text_encoder import TextEncoder
    from core.train.compact_cached import holdout_split, train_head

    torch.manual_seed(0)
    data = _fake_data()
    net = build_net(CompactConfig(size=64, backbone="centernet"))
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(len(data.objects), net.norm.normalized_shape[0])).astype(np.float32)
    obj = rng.integers(0, len(data.objects), 600)
    feat = (protos[obj] + 0.3 * rng.normal(size=(600, protos.shape[1]))).astype(np.float16)
    args = _cached_args(tmp_path, "--steps", "150", "--head-batch", "64", "--lr", "3e-3", "--warmup", "10",
                        "--log-every", "50")
    held = holdout_split(obj, 0.2, 0)
    assert 0 < held.sum() < len(obj) and not set(obj[held]) & set(obj[~held])  # whole objects held out
    logs = []
    train_head(net, feat[~held], obj[~held], data.objects, object_classes(), TextEncoder(), args,
               lambda m, **kw: logs.append(kw), held=(feat[held], obj[held]))
    assert len(logs) == 3 and logs[-1]["train_class_acc"] > 0.9, logs
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert 0.0 <= logs[-1]["held_class_acc"] <= 1.0
