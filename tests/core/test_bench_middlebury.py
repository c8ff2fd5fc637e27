"""The dense stereo on real photographs: Middlebury 2014 Motorcycle (scikit-image's copy, GT
disparity) through the engine's plane sweep, two views, calibrated."""

from __future__ import annotations

import numpy as np
import pytest

from core.bench.middlebury import depth_errors, evaluate_motorcycle, load_pair


def test_depth_errors_hand_computed():
    gt = np.array([[1.0, 2.0], [4.0, np.nan]])
    pred = np.array([[1.1, 2.0], [2.0, 3.0]])
    e = depth_errors(pred, gt)
    # |1.1-1|/1 = 0.1, 0, |2-4|/4 = 0.5 -> 0.2; ratios 1.1, 1, 2 -> 2/3 under 1.25; 3 of 3 GT pixels.
    assert e["abs_rel"] == pytest.approx(0.2) and e["delta_1.25"] == pytest.approx(2 / 3) and e["coverage"] == 1.0
    assert depth_errors(np.zeros((2, 2)), gt)["coverage"] == 0.0


def test_calibration_matches_the_gt_disparity():
    left, right, depth, _K = load_pair()
    ok = np.isfinite(depth)
    assert left.shape == right.shape == (500, 741, 3) and ok.mean() > 0.9
    assert 1.5 < np.nanmin(depth) and np.nanmax(depth) < 6.0  # a motorcycle a few metres away


def test_plane_sweep_on_motorcycle():
    r = evaluate_motorcycle(num_depths=96)
    f = r["filtered"]
    assert f["delta_1.25"] >= 0.8 and f["abs_rel"] <= 0.15 and f["coverage"] >= 0.7, r
