"""OVS pooling helpers: per-mask feature averages and scene grid tokens."""

import torch

from core.models.ovs.pooling import grid_tokens, mask_pool


def test_mask_pool_matches_a_manual_average():
    feat = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)  # (C, h, w)
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)  # masks at 2x the feature resolution
    masks[0, :4, :4] = True  # exactly the top-left 2x2 patches
    masks[1, 0, 0] = True  # a quarter of one patch: still that patch's feature
    pooled, valid = mask_pool(feat, masks)  # masks[2] is empty
    assert pooled.shape == (3, 2) and valid.tolist() == [True, True, False]
    torch.testing.assert_close(pooled[0], feat[:, :2, :2].mean((1, 2)))
    torch.testing.assert_close(pooled[1], feat[:, 0, 0])
    assert float(pooled[2].abs().max()) == 0.0
    batched, bvalid = mask_pool(feat[None].repeat(2, 1, 1, 1), masks[None].repeat(2, 1, 1, 1))
    assert batched.shape == (2, 3, 2) and torch.equal(batched[1], pooled) and bvalid.shape == (2, 3)


def test_grid_tokens():
    feat = torch.randn(2, 5, 8, 12)
    tok = grid_tokens(feat, 4)
    assert tok.shape == (2, 16, 5)
    torch.testing.assert_close(tok.mean(1), feat.mean((2, 3)))  # equal-size cells: same overall mean
