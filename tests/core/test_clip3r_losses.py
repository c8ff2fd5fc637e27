"""CLIP3R losses against values computed by hand."""

import math

import pytest
import torch

from core.models.clip3r import clip_feature_loss, confidence_l1_loss, normalize_pointmaps


def _two_pixels():
    # one sample, one view, a 1 x 3 image; the third pixel has no ground truth
    pred = torch.tensor([[1.0, 0, 0], [0, 2, 0], [50, 50, 50]]).reshape(1, 1, 1, 3, 3)
    gt = torch.tensor([[1.0, 0, 0], [0, 0, 2], [0, 0, 0]]).reshape(1, 1, 1, 3, 3)
    conf = torch.tensor([1.0, 2.0, 7.0]).reshape(1, 1, 1, 3)
    valid = torch.tensor([True, True, False]).reshape(1, 1, 1, 3)
    return pred, gt, conf, valid


def test_normalize_pointmaps_uses_mean_norm_of_valid_points():
    pred, _, _, valid = _two_pixels()
    normed, scale = normalize_pointmaps(pred, valid)
    assert scale.tolist() == [1.5]  # (1 + 2) / 2, the invalid far point ignored
    torch.testing.assert_close(normed[0, 0, 0, 1], torch.tensor([0.0, 2 / 1.5, 0]))


def test_confidence_loss_hand_computed():
    pred, gt, conf, valid = _two_pixels()
    alpha = 0.5
    # normalised: both scales are 1.5; pixel 0 error 0, pixel 1 error |(0, 4/3, -4/3)| = 4 sqrt(2) / 3
    e1 = 4 * math.sqrt(2) / 3
    expected = ((1 * 0 - alpha * math.log(1)) + (2 * e1 - alpha * math.log(2))) / 2
    got = confidence_l1_loss(pred, conf, gt, valid, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # without normalisation (L2W): raw error |(0, 2, -2)| = 2 sqrt(2)
    expected_raw = ((0 - 0) + (2 * 2 * math.sqrt(2) - alpha * math.log(2))) / 2
    got_raw = confidence_l1_loss(pred, conf, gt, valid, alpha=alpha, normalize=False)
    assert got_raw.item() == pytest.approx(expected_raw, rel=1e-6)
    got_sum = confidence_l1_loss(pred, conf, gt, valid, alpha=alpha, normalize=False, reduction="sum")
    assert got_sum.item() == pytest.approx(2 * expected_raw, rel=1e-6)


def test_confidence_loss_is_scale_invariant_and_differentiable():
    torch.manual_seed(0)
    gt = torch.randn(2, 3, 4, 5, 3)
    pred = (gt + 0.1 * torch.randn_like(gt)).requires_grad_()
    conf = (1 + torch.rand(2, 3, 4, 5)).requires_grad_()
    a = confidence_l1_loss(pred, conf, gt)
    b = confidence_l1_loss(pred * 7.0, conf, gt * 0.3)
    torch.testing.assert_close(a, b)
    a.backward()
    assert torch.isfinite(pred.grad).all() and torch.isfinite(conf.grad).all()
    # no valid pixel: zero, still differentiable
    z = confidence_l1_loss(pred, conf, gt, torch.zeros(2, 3, 4, 5, dtype=torch.bool))
    assert z.item() == 0.0 and z.requires_grad


def test_clip_feature_loss_hand_computed():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # (B, d=2, H=1, W=2)
    target = torch.tensor([[0.0, 2.0], [1.0, 0.0]]).reshape(1, 2, 1, 2)
    # per pixel L1 over channels: pixel 0 |1-0| + |3-1| = 3, pixel 1 |2-2| + |4-0| = 4
    assert clip_feature_loss(pred, target).item() == pytest.approx(3.5)
    valid = torch.tensor([[[True, False]]])
    assert clip_feature_loss(pred, target, valid).item() == pytest.approx(3.0)
    # (B, V, d, H, W) works the same
    assert clip_feature_loss(pred[:, None], target[:, None], valid[:, None]).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        clip_feature_loss(pred, target[:, :1])
