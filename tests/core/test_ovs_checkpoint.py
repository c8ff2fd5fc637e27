"""OVS checkpoints: safetensors + JSON config, bit-identical reload, kind checks, fp16 shipping."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from core.models.ovs import FusionConfig, OvsFusion, PointEncoder, PointEncoderConfig, load_checkpoint, load_model

SMALL_POINT = PointEncoderConfig(dim=48, n_points=32, centroids=(8, 4), neighbours=(6, 3), widths=(16, 16, 32), hidden=32)
SMALL = FusionConfig(dim=48, clip_dim=48, dino_dim=32, dino_proj=16, heads=4, mask_hidden=32, weight_hidden=32,
                     p_drop_dino=0.1, point=SMALL_POINT)


from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread


def _inputs(B: int = 3) -> tuple:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(B, 48, generator=g), torch.randn(B, 4, 48, generator=g), torch.randn(B, 32, generator=g),
            torch.randn(B, 32, 9, generator=g))


@torch.no_grad()
def test_fusion_reload_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    net = OvsFusion(SMALL)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not just the initialisation
    path = net.save(tmp_path / "ovs.safetensors", extra={"logit_scale": 9.5, "data": "train-v1"})
    back = OvsFusion.from_pretrained(path)
    assert not back.training and back.cfg == SMALL
    ref, new = net.state_dict(), back.state_dict()
    assert ref.keys() == new.keys()
    for k in ref:
        assert ref[k].dtype == new[k].dtype and torch.equal(ref[k], new[k]), k
    x = _inputs()
    assert torch.equal(net.eval()(*x), back(*x))
    ck = load_checkpoint(path, "fusion")
    assert ck.config == SMALL.to_dict() and json.loads(ck.metadata["logit_scale"]) == 9.5
    assert ck.metadata["data"] == "train-v1" and ck.metadata["space_id"] == "all-MiniLM-L6-v2"
    assert isinstance(load_model(path), OvsFusion)


@torch.no_grad()
def test_point_encoder_reload_and_kind_checks(tmp_path):
    torch.manual_seed(1)
    net = PointEncoder(SMALL_POINT).eval()
    path = net.save(tmp_path / "pe.safetensors")
    back = load_model(path)
    assert isinstance(back, PointEncoder) and back.cfg == SMALL_POINT
    pts = _inputs()[3]
    assert torch.equal(net(pts), back(pts))
    with pytest.raises(ValueError, match="expected a 'fusion'"):
        OvsFusion.from_pretrained(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not an OVS checkpoint"):
        load_checkpoint(other)
    with pytest.raises(ValueError, match="reserved"):
        net.save(tmp_path / "x.safetensors", extra={"kind": "fusion"})


@torch.no_grad()
def test_half_precision_for_shipping(tmp_path):
    torch.manual_seed(2)
    net = OvsFusion(SMALL).eval()
    full = net.save(tmp_path / "f32.safetensors")
    half = net.save(tmp_path / "f16.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with safe_open(str(half), framework="pt") as f:
        assert f.get_tensor("cat.weight").dtype == torch.float16
    back = OvsFusion.from_pretrained(half)
    assert back.cat.weight.dtype == torch.float32
    x = _inputs()
    torch.testing.assert_close(back(*x), net(*x), atol=2e-3, rtol=0)
