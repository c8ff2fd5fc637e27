"""Compact image encoder: shapes, normalisation, gradients, preprocessing, the sigmoid loss."""

import math

import numpy as np
import torch

from core.models.compact import CompactConfig, CompactImageNet, ImageEncoder, SigmoidLoss, preprocess, save_weights
from core.models.compact.net import sigmoid_loss

SMALL = CompactConfig(size=32, stem=(8, 8), widths=(8, 16), blocks=(1, 1), head_hidden=32, dim=384)


def test_forward_shapes_norm_and_gradients():
    torch.manual_seed(0)
    net = CompactImageNet(SMALL)
    x = torch.randn(3, 4, 32, 32, requires_grad=True)
    y = net(x)
    assert y.shape == (3, 384)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(3))
    crit = SigmoidLoss()
    loss = crit(y, torch.nn.functional.normalize(torch.randn(3, 384), dim=1))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in net.head.parameters())
    assert crit.log_t.grad is not None and crit.b.grad is not None


def test_preprocess_pads_and_masks():
    crops = np.zeros((2, 20, 40, 3), np.uint8)
    masks = np.ones((2, 20, 40), bool)
    x = preprocess(crops, masks, 32)
    assert x.shape == (2, 4, 32, 32)
    assert abs(float(x[0, 3, 0, 16]) + 1) < 1e-5 and abs(float(x[0, 3, 16, 16]) - 1) < 1e-5  # padding = background
    x2 = preprocess(crops, None, 32)
    assert float(x2[:, 3].abs().max()) == 0.0  # no mask: channel 0
    x3 = preprocess([np.zeros((10, 5, 3), np.uint8), np.zeros((7, 9, 3), np.uint8)], [None, np.ones((7, 9), bool)], 16)
    assert x3.shape == (2, 4, 16, 16)


def test_sigmoid_loss_hand_computed_2x2():
    img = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    sp = lambda z: math.log1p(math.exp(z))  # noqa: E731  -log sigmoid(-z)
    # logits = 2 * cos - 1 = [[1, -1], [0.2, 0.6]]; positives on the diagonal
    expected = (sp(-1.0) + sp(-1.0) + sp(0.2) + sp(-0.6)) / 2
    got = sigmoid_loss(img, txt, torch.tensor(2.0), torch.tensor(-1.0))
    assert abs(float(got) - expected) < 1e-6
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # ignore pair (0, 1)
    got_w = sigmoid_loss(img, txt, torch.tensor(2.0), torch.tensor(-1.0), weights=w)
    assert abs(float(got_w) - (sp(-1.0) + sp(0.2) + sp(-0.6)) / 2) < 1e-6


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(1)
    net = CompactImageNet(SMALL)
    p = save_weights(net, tmp_path / "w.safetensors", 12.0, -9.0, half=False)
    enc = ImageEncoder.from_pretrained(p, device="cpu")
    assert enc.logit_scale == 12.0 and enc.size == 32
    crops = np.random.default_rng(0).integers(0, 255, (3, 24, 30, 3), dtype=np.uint8)
    e = enc.encode(crops, np.ones((3, 24, 30), bool))
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    net.eval()
    with torch.no_grad():
        ref = net(preprocess(crops, np.ones((3, 24, 30), bool), 32)).numpy()
    np.testing.assert_allclose(e, ref, atol=1e-5)
    assert enc.encode(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 384)
