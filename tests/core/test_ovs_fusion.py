"""OVS fusion: shapes, gradients, graceful degradation (missing DINO / 3D path == dropped path), dropout determinism."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from core.models.ovs import FusionConfig, OvsFusion, SigmoidLoss, sample_path_drop
from core.models.ovs.point_encoder import PointEncoderConfig

D, C, CD = 48, 40, 32  # text dim, CLIP3R dim, DINO dim (small, and deliberately different)
SMALL = FusionConfig(dim=D, clip_dim=C, dino_dim=CD, dino_proj=16, heads=4, mlp_ratio=2.0, mask_hidden=32,
                     weight_hidden=32, point=PointEncoderConfig(dim=D, n_points=32, centroids=(8, 4),
                                                                neighbours=(6, 3), widths=(16, 16, 32), hidden=32))


from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread


def _inputs(B: int = 4, seed: int = 0, P: int = 32, Ts: int = 5, Ti: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(B, P, 9, generator=g)
    pts[..., 3:6] = torch.rand(B, P, 3, generator=g)
    return {"clip_inst": torch.randn(B, Ti, C, generator=g), "clip_scene": torch.randn(B, Ts, C, generator=g),
            "dino_inst": torch.randn(B, CD, generator=g), "points": pts, "point_mask": torch.rand(B, P, generator=g) > 0.2}


def _model(seed: int = 0, **overrides) -> OvsFusion:
    torch.manual_seed(seed)
    m = OvsFusion(dataclasses.replace(SMALL, **overrides))
    with torch.no_grad():  # move away from the near-identity init so every path visibly matters
        m.gamma.fill_(1.0)
        m.weight_net[-1].weight.normal_(0, 0.2)
    return m


def _same_weights(m: OvsFusion, **overrides) -> OvsFusion:
    other = OvsFusion(dataclasses.replace(m.cfg, **overrides))
    other.load_state_dict(m.state_dict())
    return other


def _unit(x: torch.Tensor) -> None:
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(x.shape[0]))


@torch.no_grad()
def test_shapes_weights_and_near_identity_init():
    m = _model().eval()
    out = m.forward_parts(**_inputs())
    assert out.descriptor.shape == (4, D) and out.paths.shape == (4, 3, D) and out.weights.shape == (4, 3, D)
    _unit(out.descriptor)
    torch.testing.assert_close(out.weights.sum(1), torch.ones(4, D))
    assert out.used.all() and out.dino_used.all()
    # pooled (B, C) inputs instead of tokens
    x = _inputs()
    assert m(x["clip_inst"][:, 0], x["clip_scene"].mean(1), x["dino_inst"]).shape == (4, D)
    # default config: an untrained fusion returns (almost) the normalised masked CLIP3R feature
    torch.manual_seed(0)
    full = OvsFusion().eval()
    c = torch.randn(3, 384)
    pts = torch.randn(3, 64, 9)
    y = full(c, torch.randn(3, 16, 384), torch.randn(3, 384), pts)
    _unit(y)
    assert float(F.cosine_similarity(y, c).min()) > 0.9


def test_every_parameter_gets_a_gradient():
    m = _model().eval()  # eval: no random drops; presence is mixed by hand instead
    x = _inputs(B=4)
    x["dino_inst"][2:] = float("nan")  # rows without DINO may hold anything: they are never read
    x["point_mask"][1::2] = False  # rows 1, 3: no points
    x["clip_inst"].requires_grad_(True)
    crit = SigmoidLoss()
    out = m.forward_parts(**x, dino_present=torch.tensor([True, True, False, False]))
    assert out.dino_used.tolist() == [True, True, False, False]
    assert out.used[:, 2].tolist() == [True, False, True, False]
    text = F.normalize(torch.randn(3, D), dim=1)
    loss = crit(out.descriptor, text, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for name, p in list(m.named_parameters()) + list(crit.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert torch.isfinite(x["clip_inst"].grad).all()


@torch.no_grad()
def test_missing_dino_equals_dropped_dino():
    m = _model()
    x = _inputs()
    absent = m.eval().forward_parts(**{**x, "dino_inst": None})
    _unit(absent.descriptor)
    assert not absent.dino_used.any()
    dropped = _same_weights(m, p_drop_dino=1.0, p_drop_points=0.0).train().forward_parts(**x)
    assert not dropped.dino_used.any()
    torch.testing.assert_close(absent.descriptor, dropped.descriptor, atol=1e-6, rtol=0)
    present = m.eval()(**x)
    assert not torch.allclose(present, absent.descriptor, atol=1e-4)  # DINO does change the descriptor


@torch.no_grad()
def test_missing_points_equal_dropped_points():
    m = _model()
    x = _inputs()
    absent = m.eval().forward_parts(**{**x, "points": None, "point_mask": None})
    _unit(absent.descriptor)
    assert not absent.used[:, 2].any()
    assert float(absent.weights[:, 2].abs().max()) == 0.0 and float(absent.paths[:, 2].abs().max()) == 0.0
    torch.testing.assert_close(absent.weights[:, :2].sum(1), torch.ones(4, D))  # renormalised over two paths
    dropped = _same_weights(m, p_drop_dino=0.0, p_drop_points=1.0).train().forward_parts(**x)
    torch.testing.assert_close(absent.descriptor, dropped.descriptor, atol=1e-6, rtol=0)
    # an all-False point mask for one segment == no points for that segment
    empty = {**x, "point_mask": x["point_mask"].clone()}
    empty["point_mask"][1] = False
    row = m.eval()(**empty)
    torch.testing.assert_close(row[1], absent.descriptor[1], atol=1e-6, rtol=0)
    both = m(**{**x, "dino_inst": None, "points": None})
    _unit(both)
    assert not torch.allclose(m(**x), absent.descriptor, atol=1e-4)  # the 3D path does change it


@torch.no_grad()
def test_rows_are_independent():
    m = _model().eval()
    x = _inputs(B=4)
    full = m(**x)
    one = m(**{k: v[2:3] for k, v in x.items()})
    torch.testing.assert_close(one[0], full[2], atol=1e-5, rtol=0)


@torch.no_grad()
def test_token_masks():
    m = _model().eval()
    x = _inputs()
    inst_mask = torch.ones(4, 3, dtype=torch.bool)
    inst_mask[:, 2] = False
    scene_mask = torch.ones(4, 5, dtype=torch.bool)
    scene_mask[0, 1:] = False
    y = m(**x, inst_mask=inst_mask, scene_mask=scene_mask)
    x2 = {**x, "clip_inst": x["clip_inst"].clone(), "clip_scene": x["clip_scene"].clone()}
    x2["clip_inst"][:, 2] = 1e3  # masked tokens do not matter
    x2["clip_scene"][0, 1:] = -1e3
    torch.testing.assert_close(m(**x2, inst_mask=inst_mask, scene_mask=scene_mask), y)
    inst_mask[1] = False
    with pytest.raises(ValueError):
        m(**x, inst_mask=inst_mask)


@torch.no_grad()
def test_path_dropout_determinism():
    m = _model(p_drop_dino=0.5, p_drop_points=0.5).train()
    x = _inputs(B=16)
    a = m.forward_parts(**x, generator=torch.Generator().manual_seed(7))
    b = m.forward_parts(**x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.descriptor, b.descriptor) and torch.equal(a.used, b.used)
    assert torch.equal(a.dino_used, b.dino_used)
    assert 0 < int(a.dino_used.sum()) < 16 and 0 < int(a.used[:, 2].sum()) < 16  # some drops, not all
    c = m.forward_parts(**x, generator=torch.Generator().manual_seed(8))
    assert not (torch.equal(a.dino_used, c.dino_used) and torch.equal(a.used, c.used))
    torch.manual_seed(3)  # the global RNG works the same way
    d = m.forward_parts(**x)
    torch.manual_seed(3)
    e = m.forward_parts(**x)
    assert torch.equal(d.descriptor, e.descriptor)
    # eval never drops, whatever p
    ev = _same_weights(m, p_drop_dino=1.0, p_drop_points=1.0).eval().forward_parts(**x)
    assert ev.dino_used.all() and torch.equal(ev.used[:, 2], x["point_mask"].any(1))
    assert not sample_path_drop(5, 0.0).any() and sample_path_drop(5, 1.0).all()
