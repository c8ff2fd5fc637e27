"""OVS L_sim (SigLIP sigmoid loss over segment-text pairs): a hand-computed value, ignore labels, gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from core.models.compact.net import sigmoid_loss as compact_sigmoid_loss
from core.models.ovs.loss import SigmoidLoss, pair_targets, sigmoid_loss


def test_hand_computed_2x2():
    # segments d1 = (1, 0), d2 = (0, 1); texts e1 = (1, 0), e2 = (0.6, 0.8); t = 2, b = -1
    # cos     = [[1, 0.6], [0, 0.8]]
    # logits  = 2 * cos - 1 = [[1, 0.2], [-1, 0.6]]
    # labels  = [0, 1]  ->  z = [[+1, -1], [-1, +1]]
    # z*logit = [[1, -0.2], [1, 0.6]]
    # -log sigmoid(x) = log(1 + exp(-x)):
    #   x = 1    -> log(1 + e^-1)   = 0.31326169
    #   x = -0.2 -> log(1 + e^0.2)  = 0.79813887
    #   x = 1    -> 0.31326169
    #   x = 0.6  -> log(1 + e^-0.6) = 0.43748795
    # sum over the 4 pairs = 1.86215019; divided by B = 2 segments -> 0.93107510
    desc = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    labels = torch.tensor([0, 1])
    expected = 0.93107510
    assert float(sigmoid_loss(desc, text, labels, 2.0, -1.0)) == pytest.approx(expected, abs=1e-6)
    crit = SigmoidLoss(t=2.0, b=-1.0)
    assert crit.t.item() == pytest.approx(2.0)
    assert crit(desc, text, labels).item() == pytest.approx(expected, abs=1e-6)
    # norms do not matter: logits use the cosine
    assert float(sigmoid_loss(3 * desc, 0.5 * text, labels, 2.0, -1.0)) == pytest.approx(expected, abs=1e-6)
    # the same formula written with log-sigmoid
    z = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    logits = 2.0 * desc @ text.t() - 1.0
    assert float(-F.logsigmoid(z * logits).sum() / 2) == pytest.approx(expected, abs=1e-6)
    assert sum(math.log1p(math.exp(-x)) for x in (1, -0.2, 1, 0.6)) / 2 == pytest.approx(expected, abs=1e-7)


def test_agrees_with_the_compact_encoders_loss():
    g = torch.Generator().manual_seed(0)
    desc = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    text = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    t, b = torch.tensor(7.0), torch.tensor(-3.0)
    ours = sigmoid_loss(desc, text, torch.arange(5), t, b)
    torch.testing.assert_close(ours, compact_sigmoid_loss(desc, text, t, b))


def test_ignored_segments_and_multi_hot_targets():
    g = torch.Generator().manual_seed(1)
    desc, text = torch.randn(4, 8, generator=g), torch.randn(3, 8, generator=g)
    labels = torch.tensor([0, -1, 2, 1])
    keep = labels >= 0
    torch.testing.assert_close(sigmoid_loss(desc, text, labels, 10.0, -10.0),
                               sigmoid_loss(desc[keep], text, labels[keep], 10.0, -10.0))
    targets, valid = pair_targets(labels, 3)
    assert valid.tolist() == [True, False, True, True] and targets.sum().item() == 3
    one_hot = F.one_hot(labels[keep], 3).float()
    torch.testing.assert_close(sigmoid_loss(desc[keep], text, one_hot, 10.0, -10.0),
                               sigmoid_loss(desc[keep], text, labels[keep], 10.0, -10.0))
    assert float(sigmoid_loss(desc, text, torch.full((4,), -1), 10.0, -10.0)) == 0.0  # nothing counts


def test_gradients_and_probabilities():
    crit = SigmoidLoss()
    assert crit.t.item() == pytest.approx(10.0) and crit.b.item() == pytest.approx(-10.0)  # SigLIP init
    desc = torch.randn(3, 8, requires_grad=True)
    text = torch.randn(4, 8, requires_grad=True)
    crit(desc, text, torch.tensor([0, 3, 1])).backward()
    for p in (crit.log_t, crit.b, desc, text):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    prob = crit.probabilities(desc, text)
    assert prob.shape == (3, 4) and float(prob.min()) > 0 and float(prob.max()) < 1
