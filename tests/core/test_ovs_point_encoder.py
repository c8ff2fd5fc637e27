"""OVS 3D point encoder ("3D-CLIP"): shapes, masks, invariances, gradients, distillation loss, input helpers."""

import dataclasses

import numpy as np
import pytest
import torch

from core.models.ovs.point_encoder import (
    PointEncoder,
    PointEncoderConfig,
    collate_points,
    distill_loss,
    estimate_normals,
    farthest_point_sample,
    point_features,
    sample_points,
)

SMALL = PointEncoderConfig(dim=384, n_points=64, centroids=(16, 8), neighbours=(8, 4), widths=(16, 32, 64), hidden=64)


from torch_threads import one_torch_thread  # noqa: F401 - autouse: one torch thread


def _points(B: int, P: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(B, P, 9, generator=g)
    pts[..., :3] = pts[..., :3] * torch.tensor([1.0, 0.5, 0.3]) + 2.0  # off-centre, anisotropic
    pts[..., 3:6] = torch.rand(B, P, 3, generator=g)
    pts[..., 6:9] = torch.nn.functional.normalize(pts[..., 6:9], dim=-1)
    return pts


@pytest.fixture(scope="module")
def net() -> PointEncoder:
    torch.manual_seed(0)
    return PointEncoder(SMALL).eval()


@torch.no_grad()
def test_shapes_and_normalised(net):
    pts = _points(3, 64)
    mask = torch.ones(3, 64, dtype=torch.bool)
    mask[1, 40:] = False
    y = net(pts, mask)
    assert y.shape == (3, 384)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(3))
    assert net(pts).shape == (3, 384)  # no mask: all points valid
    default = PointEncoder()
    assert default(_points(2, 512)).shape == (2, 384)


@torch.no_grad()
def test_padding_is_ignored(net):
    pts = _points(2, 40)
    y = net(pts, torch.ones(2, 40, dtype=torch.bool))
    padded = torch.cat([pts, 100 * torch.randn(2, 24, 9)], 1)  # garbage far away, masked out
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, :40] = True
    torch.testing.assert_close(net(padded, mask), y, atol=1e-5, rtol=0)


@torch.no_grad()
def test_permutation_and_translation_invariance(net):
    pts = _points(2, 64, seed=1)
    y = net(pts)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(net(pts[:, perm]), y, atol=1e-4, rtol=0)
    shifted = pts.clone()
    shifted[..., :3] += torch.tensor([3.0, -1.0, 0.5])
    torch.testing.assert_close(net(shifted), y, atol=1e-4, rtol=0)


@torch.no_grad()
def test_scale_feature():
    torch.manual_seed(0)
    pts = _points(2, 64)
    big = pts.clone()
    big[..., :3] *= 3.0
    no_scale = PointEncoder(dataclasses.replace(SMALL, use_scale=False)).eval()
    torch.testing.assert_close(no_scale(big), no_scale(pts), atol=1e-4, rtol=0)  # shape only
    with_scale = PointEncoder(SMALL).eval()
    assert not torch.allclose(with_scale(big), with_scale(pts), atol=1e-4)  # size is a cue


@torch.no_grad()
def test_tiny_segments_are_finite(net):
    pts = _points(3, 64)
    mask = torch.zeros(3, 64, dtype=torch.bool)
    mask[0, 0] = True  # one point
    mask[1, :3] = True  # fewer points than neighbours / centroids
    mask[2, :] = True
    pts[0, 0, :3] = 0.0
    y = net(pts, mask)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError):
        net(pts, torch.zeros(3, 64, dtype=torch.bool))


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = PointEncoder(SMALL).train()
    pts = _points(4, 64).requires_grad_(True)
    mask = torch.rand(4, 64, generator=torch.Generator().manual_seed(3)) > 0.2
    target = torch.nn.functional.normalize(torch.randn(4, 384), dim=1)
    loss = distill_loss(net(pts, mask), target)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert pts.grad[~mask].abs().sum() == 0  # padded points never influence the output


@torch.no_grad()
def test_farthest_point_sample_uses_valid_points_only():
    xyz = torch.randn(2, 20, 3)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, :5] = True
    mask[1, 10:] = True
    idx = farthest_point_sample(xyz, mask, 8)
    assert idx.shape == (2, 8)
    assert mask.gather(1, idx).all()
    assert len(set(idx[0].tolist())) == 5  # all 5 valid points, then repeats


def test_distill_loss_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(distill_loss(a, a)) == pytest.approx(0.0, abs=1e-7)
    assert float(distill_loss(a, -a)) == pytest.approx(2.0)
    assert float(distill_loss(a, a.flip(1))) == pytest.approx(1.0)
    # weighted: only the first (identical) pair counts
    assert float(distill_loss(a, torch.stack([a[0], -a[1]]), torch.tensor([1.0, 0.0]))) == pytest.approx(0.0, abs=1e-7)
    target = a.clone().requires_grad_(True)
    distill_loss(a.clone().requires_grad_(True), target).backward()
    assert target.grad is None  # the teacher is not trained by distillation


@torch.no_grad()
def test_input_helpers():
    xyz = np.random.default_rng(0).normal(size=(10, 3))
    rgb = np.full((10, 3), 255, np.uint8)
    f = point_features(xyz, rgb)
    assert f.shape == (10, 9) and f.dtype == torch.float32
    assert float(f[:, 3:6].min()) == 1.0 and float(f[:, 6:].abs().max()) == 0.0  # uint8 -> [0, 1]; no normals
    with pytest.raises(ValueError):
        point_features(xyz, rgb[:5])

    big, small, empty = torch.randn(100, 9), torch.randn(5, 9), torch.zeros(0, 9)
    pts, mask = collate_points([big, small, empty], n=16, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (3, 16, 9) and mask.shape == (3, 16)
    assert mask.sum(1).tolist() == [16, 5, 0]
    torch.testing.assert_close(pts[1, :5], small)
    pts2, _ = collate_points([big, small, empty], n=16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pts, pts2)  # sampling is reproducible under a seed
    sub, m = sample_points(big, 16)
    assert m.all() and len({tuple(r.tolist()) for r in sub}) == 16  # without replacement


@torch.no_grad()
def test_estimate_normals_plane_and_sphere():
    g = torch.Generator().manual_seed(0)
    plane = torch.cat([torch.rand(1, 200, 2, generator=g), torch.zeros(1, 200, 1)], -1)
    n = estimate_normals(plane, k=8)
    assert torch.allclose(n[..., 2].abs(), torch.ones(1, 200), atol=1e-4)
    sphere = torch.nn.functional.normalize(torch.randn(1, 400, 3, generator=g), dim=-1)
    mask = torch.ones(1, 400, dtype=torch.bool)
    mask[0, 300:] = False
    n = estimate_normals(sphere, mask, k=10)
    radial = (n[0, :300] * sphere[0, :300]).sum(-1)
    assert float(radial.min()) > 0.8  # outward, close to the true normal
    assert float(n[0, 300:].abs().max()) == 0.0
