"""CLIP3R checkpoints: our safetensors round trip (bit-identical) and SLAM3R loading."""

import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.models.clip3r import CLIP3R, get_config, load_checkpoint, load_slam3r, save_checkpoint
from core.models.clip3r.checkpoint import read_checkpoint_metadata
from core.models.clip3r.slam3r_keys import map_slam3r_key, map_slam3r_state_dict, read_state_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHAPES = FIXTURES / "slam3r_param_shapes.json.gz"
PARITY = FIXTURES / "slam3r_tiny_parity.safetensors"

TINY = dict(img_size=(32, 48), enc_dim=32, enc_depth=2, enc_heads=2, dec_dim=24, dec_depth=2, dec_heads=2,
            clip_dim=16, dpt_layer_dims=(8, 8, 16, 16), dpt_feature_dim=16, dpt_hooks=(0, 1, 1, 2),
            retrieval_depth=1)


# -- our checkpoints --------------------------------------------------------------------------

def test_save_load_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    cfg = get_config("small", **TINY)
    model = CLIP3R(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # random everywhere (zero-init parts included)
            p.add_(torch.randn_like(p))
    path = save_checkpoint(model, tmp_path / "ck" / "clip3r.safetensors", metadata={"step": 12})
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    loaded, meta = load_checkpoint(path)
    assert loaded.cfg == cfg and meta["step"] == "12" and json.loads(meta["missing"]) == []
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    loaded.eval()
    img, clip = torch.randn(1, 3, 3, 32, 48), torch.randn(1, 3, 6, 16)
    with torch.no_grad():
        o1, o2 = model.i2p(img, clip), loaded.i2p(img, clip)
    assert torch.equal(o1.points, o2.points) and torch.equal(o1.conf, o2.conf)
    # saving the reloaded model gives the same tensors again (the header's key order is
    # safetensors' business, so compare contents, not file bytes)
    path2 = save_checkpoint(loaded, tmp_path / "again.safetensors", metadata={"step": 12})
    again = load_file(str(path2))
    assert all(torch.equal(again[k], a[k]) for k in a)


def test_foreign_files_are_refused(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not an Ov3R CLIP3R checkpoint"):
        read_checkpoint_metadata(tmp_path / "other.safetensors")


def test_non_strict_load_keeps_fresh_init_for_missing(tmp_path):
    model = CLIP3R(get_config("small", **TINY))
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    state = load_file(str(path))
    state.pop("l2w.feature_head.head_out.2.bias")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(state, str(tmp_path / "partial.safetensors"), metadata=meta)
    with pytest.raises(RuntimeError):
        load_checkpoint(tmp_path / "partial.safetensors")
    _, meta = load_checkpoint(tmp_path / "partial.safetensors", strict=False)
    assert json.loads(meta["missing"]) == ["l2w.feature_head.head_out.2.bias"]


# -- SLAM3R: names and shapes of the public models ---------------------------------------------

def _fixture():
    with gzip.open(SHAPES, "rt") as f:
        return json.load(f)


def test_every_slam3r_key_maps_to_a_paper_parameter_of_the_same_shape():
    rec = _fixture()
    ours = {k: tuple(v.shape) for k, v in CLIP3R.from_preset("paper", device="meta").state_dict().items()}
    covered = set()
    for kind in ("i2p", "l2w"):
        assert len(rec[kind]) > 500
        for key, shape in rec[kind].items():
            name = map_slam3r_key(kind, key)
            if name is None:  # dropped on purpose: only L2W's unused patch embedding
                assert kind == "l2w" and key.startswith("patch_embed."), key
                continue
            assert name in ours, (kind, key, name)
            assert ours[name] == tuple(shape), (kind, key, name, ours[name], shape)
            assert name not in covered, f"two SLAM3R keys map to {name}"
            covered.add(name)
    # everything of ours that is not a CLIP part comes from SLAM3R
    fresh = ("i2p.clip_injection.", "l2w.feature_head.")
    assert sorted(set(ours) - covered - {k for k in ours if k.startswith(fresh)}) == []
    # the public L2W really is the encoder-less one (its file size says so)
    size = rec["source"]["public_file_bytes"]
    assert 0 < size["slam3r_l2w"] - 4 * rec["l2w_numel"] < 200_000
    assert 0 < size["slam3r_i2p"] - 4 * rec["i2p_numel"] < 200_000


def test_l2w_checkpoints_with_an_encoder_drop_it():
    rec = _fixture()
    _, dropped, unknown = map_slam3r_state_dict("l2w", {k: None for k in rec["l2w_need_encoder"]})
    assert unknown == [] and any(k.startswith("enc_blocks.") for k in dropped)
    with pytest.raises(KeyError):
        map_slam3r_key("i2p", "something.else")


# -- SLAM3R: same numbers as SLAM3R's own code (tiny random models) ------------------------------

def _parity_model():
    data = load_file(str(PARITY))
    cfg = get_config("paper", img_size=(32, 32), patch_size=8, enc_dim=32, enc_depth=1, enc_heads=2, dec_dim=24,
                     dec_depth=2, dec_heads=2, clip_dim=16, dpt_layer_dims=(8, 8, 16, 16), dpt_feature_dim=16,
                     dpt_hooks=(0, 1, 1, 2))
    model = CLIP3R(cfg).eval()
    i2p = {k[4:]: v.float() for k, v in data.items() if k.startswith("i2p.")}
    l2w = {k[4:]: v.float() for k, v in data.items() if k.startswith("l2w.")}
    return model, data, i2p, l2w


def test_slam3r_weights_reproduce_slam3r_outputs():
    model, data, i2p, l2w = _parity_model()
    report = load_slam3r(model, i2p=i2p, l2w=l2w)
    assert report.missing_non_clip == [] and report.unexpected == [] and report.shape_mismatch == []
    assert sorted(report.dropped) == ["l2w:patch_embed.proj.bias", "l2w:patch_embed.proj.weight"]
    imgs, pts = data["in.images"].float(), data["in.points"].float()
    void = data["in.void"].bool()
    with torch.no_grad():
        # F_oCLIP given: the freshly loaded injection adds exactly nothing
        out = model.i2p(imgs, torch.randn(1, 3, 16, 16), keyframe=1)
        torch.testing.assert_close(out.tokens, data["out.encoder_tokens"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.points, data["out.i2p_points"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.conf, data["out.i2p_conf"], atol=1e-4, rtol=1e-4)
        fused, _ = model.i2p.fuse(out.tokens)
        scores = model.i2p.retrieval.patch_scores(
            model.i2p.retrieval_tokens(fused[:, 0], fused[:, 1:], (4, 4), depth=2))
        torch.testing.assert_close(scores, data["out.retrieval_patch_scores"], atol=1e-4, rtol=1e-4)
        reg = model.l2w(out.tokens, pts, num_scene=1, void=void)
        torch.testing.assert_close(reg.points, data["out.l2w_points"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(reg.conf, data["out.l2w_conf"], atol=1e-4, rtol=1e-4)


def test_slam3r_files_load_from_paths(tmp_path):
    model, _, i2p, l2w = _parity_model()
    # a training checkpoint {"model": ...} with DDP prefixes, and a safetensors file
    torch.save({"model": {f"module.{k}": v for k, v in i2p.items()}, "epoch": 3}, tmp_path / "i2p.pth")
    save_file(l2w, str(tmp_path / "l2w.safetensors"))
    assert read_state_dict(tmp_path / "i2p.pth").keys() == i2p.keys()
    report = load_slam3r(model, tmp_path / "i2p.pth", tmp_path / "l2w.safetensors")
    assert report.missing_non_clip == [] and len(report.loaded) == len(i2p) + len(l2w) - 2
    torch.testing.assert_close(model.state_dict()["i2p.token_norm.weight"], i2p["enc_norm.weight"])
    # a model of another size is refused, and the report says why
    other = CLIP3R(get_config("small", **TINY))
    with pytest.raises(ValueError, match="does not fit"):
        load_slam3r(other, tmp_path / "i2p.pth")
    assert load_slam3r(other, tmp_path / "i2p.pth", strict=False).shape_mismatch
    with pytest.raises(FileNotFoundError, match="never does"):
        load_slam3r(other, tmp_path / "absent.pth")
