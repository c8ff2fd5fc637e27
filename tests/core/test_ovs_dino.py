"""OVS DINOv2 adapter: local-checkpoint round trips (timm, Meta and transformers layouts), the "absent" case,
no download without consent, per-mask features, and the fusion running without DINO."""

import numpy as np
import pytest
import torch

import core.models.ovs.dino as dino_mod
from core.models.ovs import FusionConfig, OvsFusion, PointEncoderConfig
from core.models.ovs.dino import DinoV2, build_dinov2

pytest.importorskip("timm")


from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread


@pytest.fixture(scope="module")
def vit_s() -> torch.nn.Module:
    """A randomly initialised DINOv2 ViT-S/14 (the real architecture and parameter names)."""
    torch.manual_seed(0)
    m = build_dinov2()
    with torch.no_grad():  # larger layer scales than the init's 1e-5 so every block visibly matters
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
    return m.eval()


def _features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return DinoV2(model, device="cpu").features(x)


def test_absent_without_checkpoint(monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("no model may be built (or downloaded) without a checkpoint or consent")

    monkeypatch.setattr(dino_mod, "build_dinov2", no_build)
    a = DinoV2.load()
    assert a.status == "absent" and not a.available and a.dim == 0 and "checkpoint" in a.reason
    image = np.zeros((28, 28, 3), np.uint8)
    assert a.segment_features(image, np.ones((2, 28, 28), bool)) is None
    with pytest.raises(RuntimeError, match="absent"):
        a.features(torch.zeros(1, 3, 28, 28))
    # the fusion runs on without DINO
    torch.manual_seed(0)
    cfg = FusionConfig(dim=32, clip_dim=32, dino_dim=384, dino_proj=8, heads=2, mask_hidden=16, weight_hidden=16,
                       point=PointEncoderConfig(dim=32, centroids=(4, 2), neighbours=(4, 2), widths=(8, 8, 8), hidden=8))
    with torch.no_grad():
        y = OvsFusion(cfg).eval()(torch.randn(2, 32), torch.randn(2, 32), a.segment_features(image, np.ones((2, 28, 28))))
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2))


def test_download_only_with_consent(monkeypatch):
    calls = []
    monkeypatch.setattr(dino_mod, "build_dinov2", lambda arch, pretrained=False, **k: calls.append(pretrained) or
                        torch.nn.Identity())
    assert DinoV2.load(allow_download=False).status == "absent" and calls == []
    assert DinoV2.load(allow_download=True, device="cpu").source == "download" and calls == [True]


def test_missing_checkpoint_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        DinoV2.load(tmp_path / "nope.pth")


@torch.no_grad()
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_checkpoint_round_trip(tmp_path, vit_s, suffix):
    path = tmp_path / f"dinov2_vits14{suffix}"
    sd = vit_s.state_dict()
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    a = DinoV2.load(path, device="cpu", short_side=56)
    assert a.status == "loaded" and a.dim == 384 and a.patch_size == 14 and a.source == str(path)
    back = a.model.state_dict()
    assert all(torch.equal(back[k], v) for k, v in sd.items())
    x = torch.randn(2, 3, 56, 70)
    f = a.features(x)
    assert f.shape == (2, 384, 4, 5)
    assert torch.equal(f, _features(vit_s, x))


@torch.no_grad()
def test_meta_layout_and_mismatch(tmp_path, vit_s):
    sd = dict(vit_s.state_dict())
    sd["mask_token"] = torch.zeros(1, 384)  # Meta's dinov2_vits14_pretrain.pth carries it; timm has none
    torch.save(sd, tmp_path / "meta.pth")
    x = torch.randn(1, 3, 42, 42)
    assert torch.equal(DinoV2.load(tmp_path / "meta.pth", device="cpu").features(x), _features(vit_s, x))
    del sd["blocks.3.attn.qkv.weight"]
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="does not fit"):
        DinoV2.load(tmp_path / "broken.pth", device="cpu")


@torch.no_grad()
@pytest.mark.parametrize("spelling", ["q_proj", "hub"])
def test_transformers_layout_matches_transformers(tmp_path, spelling):
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tf.Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14,
                          layerscale_value=0.5)
    hf = tf.Dinov2Model(cfg).eval()
    sd = hf.state_dict()
    if spelling == "hub":  # the names of the files on the Hugging Face Hub (facebook/dinov2-*)
        ren = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
               "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense"}
        sd = {next((k.replace(a, b) for a, b in ren.items() if a in k), k): v for k, v in sd.items()}
        assert any("attention.attention.query" in k for k in sd)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    a = DinoV2.load(tmp_path / "model.safetensors", device="cpu", embed_dim=64, depth=2, num_heads=2, img_size=56)
    x = torch.randn(2, 3, 56, 56)
    ref = hf(pixel_values=x).last_hidden_state[:, 1:].reshape(2, 4, 4, 64).permute(0, 3, 1, 2)
    torch.testing.assert_close(a.features(x), ref, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_segment_features(vit_s):
    a = DinoV2(vit_s, device="cpu", short_side=56)
    image = np.random.default_rng(0).integers(0, 256, (56, 70, 3), dtype=np.uint8)
    masks = np.zeros((3, 56, 70), bool)
    masks[0] = True
    masks[1, :28, :35] = True
    f = a.segment_features(image, masks)
    fmap = a.features(a.preprocess(image))[0]  # (384, 4, 5)
    assert f.shape == (3, 384)
    torch.testing.assert_close(f[0], fmap.mean((1, 2)))
    assert float(f[2].abs().max()) == 0.0  # empty mask
    assert a.segment_features(image, np.zeros((0, 56, 70), bool)).shape == (0, 384)
    x = a.preprocess(np.stack([image, image]))
    assert x.shape == (2, 3, 56, 70)  # short side 56, sides multiples of 14
