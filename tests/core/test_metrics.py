"""Tests for core.bench.metrics with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.bench import metrics as M


def _known_sim3(seed: int = 0):
    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
    return 2.5, R, np.array([0.3, -1.2, 4.0])


def test_umeyama_recovers_known_sim3():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(100, 3))
    s, R, t = _known_sim3()
    dst = M.apply_sim3(src, s, R, t)
    s2, R2, t2 = M.umeyama_sim3(src, dst)
    assert abs(s2 - s) < 1e-6
    np.testing.assert_allclose(R2, R, atol=1e-6)
    np.testing.assert_allclose(t2, t, atol=1e-6)
    assert abs(np.linalg.det(R2) - 1) < 1e-9


def test_umeyama_hand_example_and_rigid():
    # unit square + one point off-plane, scaled by 2 and shifted by (1,0,0)
    src = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], float)
    dst = 2 * src + np.array([1.0, 0, 0])
    s, R, t = M.umeyama_sim3(src, dst)
    assert s == pytest.approx(2.0, abs=1e-12)
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(t, [1, 0, 0], atol=1e-12)
    # rigid fit of a pure translation keeps s = 1
    s, R, t = M.umeyama_sim3(src, src + 5.0, with_scale=False)
    assert s == 1.0
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(t, [5, 5, 5], atol=1e-12)


def test_umeyama_never_returns_reflection():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(50, 3))
    dst = src * np.array([1, 1, -1.0])  # a mirror: no rotation fits exactly
    _, R, _ = M.umeyama_sim3(src, dst)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-9)


def test_umeyama_bad_input():
    with pytest.raises(ValueError):
        M.umeyama_sim3(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        M.umeyama_sim3(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError):
        M.umeyama_sim3(np.ones((5, 3)), np.zeros((5, 3)))


def test_compose_and_matrix():
    a = _known_sim3(3)
    b = (0.5, Rotation.from_rotvec([0, 0, 0.3]).as_matrix(), np.array([1.0, 2, 3]))
    x = np.random.default_rng(4).normal(size=(10, 3))
    ab = M.compose_sim3(a, b)
    np.testing.assert_allclose(M.apply_sim3(x, *ab), M.apply_sim3(M.apply_sim3(x, *b), *a), atol=1e-12)
    H = M.sim3_to_matrix(*ab)
    xh = np.c_[x, np.ones(len(x))] @ H.T
    np.testing.assert_allclose(xh[:, :3], M.apply_sim3(x, *ab), atol=1e-12)


def test_ate_exact_and_hand_computed():
    gt = np.random.default_rng(5).normal(size=(20, 3))
    s, R, t = _known_sim3(6)
    pred = M.apply_sim3(gt, s, R, t)  # prediction in another frame/scale
    rmse, (s2, R2, t2) = M.ate_rmse(pred, gt)
    assert rmse < 1e-9
    assert s2 == pytest.approx(1 / s)

    # Square corners; prediction lifts two diagonal corners by +0.1 and lowers the
    # other two by 0.1 (z = 0.1 x y): orthogonal to any rotation, so R = I, t = 0.
    gt = np.array([[1, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]], float)
    pred = gt.copy()
    pred[:, 2] = 0.1 * gt[:, 0] * gt[:, 1]
    rmse, (s, R, t) = M.ate_rmse(pred, gt, with_scale=False)
    assert rmse == pytest.approx(0.1, abs=1e-12)
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    # with scale: s = trace(D) / var(pred) = 2 / 2.01
    rmse, (s, R, t) = M.ate_rmse(pred, gt)
    s_expected = 2.0 / 2.01
    assert s == pytest.approx(s_expected, abs=1e-12)
    expected = math.sqrt(2 * (s_expected - 1) ** 2 + (s_expected * 0.1) ** 2)
    assert rmse == pytest.approx(expected, abs=1e-12)


def test_accuracy_completeness_hand_example():
    pred = np.array([[0, 0, 0], [1, 0, 0]], float)
    gt = np.array([[0, 0, 0], [0, 0, 2], [3, 0, 0]], float)
    # pred->gt: 0, 1          gt->pred: 0, 2, 2
    r = M.accuracy_completeness(pred, gt)
    assert r["acc"] == pytest.approx(0.5)
    assert r["comp"] == pytest.approx(4 / 3)
    assert r["acc_median"] == pytest.approx(0.5)
    assert r["comp_median"] == pytest.approx(2.0)


def test_fscore_hand_example():
    pred = np.array([[0, 0, 0], [1, 0, 0]], float)
    gt = np.array([[0, 0, 0], [0, 0, 2], [3, 0, 0]], float)
    r = M.fscore(pred, gt, thresholds=(0.5, 1.0, 2.0))
    assert r[0.5] == pytest.approx({"precision": 0.5, "recall": 1 / 3, "fscore": 0.4})
    assert r[1.0] == pytest.approx({"precision": 1.0, "recall": 1 / 3, "fscore": 0.5})
    assert r[2.0] == pytest.approx({"precision": 1.0, "recall": 1.0, "fscore": 1.0})
    # nothing within threshold -> F = 0, no division by zero
    far = M.fscore(pred + 100, gt, thresholds=(0.01,))
    assert far[0.01] == {"precision": 0.0, "recall": 0.0, "fscore": 0.0}
    # default thresholds are 1/2/5 cm
    assert list(M.fscore(gt, gt)) == [0.01, 0.02, 0.05]


def _box_surface(n: int, seed: int = 0) -> np.ndarray:
    """Points on the surface of an asymmetric box 1 x 0.6 x 0.3 plus a ground plane."""
    rng = np.random.default_rng(seed)
    size = np.array([1.0, 0.6, 0.3])
    p = rng.uniform(0, 1, size=(n, 3)) * size
    axis = rng.integers(0, 3, size=n)
    side = rng.integers(0, 2, size=n)
    p[np.arange(n), axis] = side * size[axis]
    plane = np.c_[rng.uniform(-1, 2, (n // 2, 2)), np.full(n // 2, -0.2)]
    return np.vstack([p, plane])


def test_icp_refines_a_perturbed_alignment():
    gt = _box_surface(20000)
    true = (1.05, Rotation.from_rotvec([0.03, -0.05, 0.08]).as_matrix(), np.array([0.04, -0.03, 0.02]))
    # prediction: GT points expressed in another frame (the inverse transform)
    s, R, t = true
    pred = (gt[::3] - t) @ R / s
    # a coarse initial guess, as after a Umeyama on noisy cameras
    init = (1.0, np.eye(3), np.zeros(3))
    before = M.accuracy_completeness(M.apply_sim3(pred, *init), gt)["acc"]
    s2, R2, t2 = M.icp_refine(pred, gt, init=init, iters=60)
    after = M.accuracy_completeness(M.apply_sim3(pred, s2, R2, t2), gt)["acc"]
    assert after < before / 5
    assert s2 == pytest.approx(s, abs=5e-3)
    np.testing.assert_allclose(R2, R, atol=1e-2)


def test_icp_rigid_keeps_scale_and_identity_is_fixed_point():
    gt = _box_surface(5000, seed=1)
    s, R, t = M.icp_refine(gt, gt, init=(2.0, np.eye(3), np.zeros(3)), iters=3, with_scale=False)
    assert s == 2.0
    s, R, t = M.icp_refine(gt, gt, iters=5)
    assert s == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(R, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(t, 0, atol=1e-9)


def _poses(centres: np.ndarray, rots: np.ndarray) -> np.ndarray:
    W = np.tile(np.eye(4), (len(centres), 1, 1))
    W[:, :3, :3], W[:, :3, 3] = rots, centres
    return W


def test_align_cloud_fixes_the_rotation_a_straight_walk_leaves_loose():
    # a room 4 x 4 x 2.5 m; the walk is a straight line through it along x, turning as it goes
    gt = _box_surface(20000) * np.array([4.0, 4.0, 2.5])
    n = 20
    centres = np.stack([np.linspace(-1.0, 1.0, n), np.zeros(n), np.full(n, 1.2)], 1)
    rots = Rotation.from_euler("zyx", np.stack([np.linspace(0, 2.0, n), np.zeros(n), np.full(n, -1.5)], 1)).as_matrix()
    gt_W = _poses(centres, rots)
    # the prediction: GT in another frame at scale 0.3, its cameras 1 cm off the line
    _, R, t = _known_sim3(3)
    s = 0.3
    to_pred = lambda x: (x - t) @ R / s  # noqa: E731  (inverse of x -> s R x + t)
    pred_pts = to_pred(gt[::2])
    wobble = np.random.default_rng(4).normal(scale=0.01, size=(n, 3))
    pred_W = _poses(to_pred(centres + wobble), np.einsum("ji,njk->nik", R, rots))
    # a swing of 5 degrees about the walk's line keeps the cameras within 2 cm and moves the walls by decimetres
    swing = Rotation.from_rotvec([0.09, 0, 0]).as_matrix()
    swung = M.compose_sim3((1.0, swing, centres.mean(0) - swing @ centres.mean(0)),
                           M.umeyama_sim3(pred_W[:, :3, 3], centres))
    cams = M.apply_sim3(pred_W[:, :3, 3], *swung)
    assert np.sqrt(np.mean(np.sum((cams - centres) ** 2, 1))) < 0.02
    assert M.accuracy_completeness(M.apply_sim3(pred_pts, *swung), gt)["acc"] > 0.03
    sim = M.align_cloud(pred_pts, gt, pred_W, gt_W)
    assert M.accuracy_completeness(M.apply_sim3(pred_pts, *sim), gt)["acc"] < 0.005
    assert sim[0] == pytest.approx(s, rel=0.01)
    np.testing.assert_allclose(sim[1], R, atol=1e-2)
