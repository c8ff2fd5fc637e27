"""The sfm engine's dense parts on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from ov3r.core.geometry.sfm.depth_filter import backproject, consistency_filter, project
from ov3r.core.geometry.sfm.fusion import PointSet, statistical_outliers, voxel_downsample
from ov3r.core.geometry.sfm.plane_sweep import inverse_depth_samples, plane_sweep
from ov3r.core.geometry.sfm.view_selection import depth_range, select_neighbours
from sfm_synthetic import K, plane_views, pose

SRC_POSES = [pose(0.25), pose(-0.25), pose(0.0, 0.2)]


@pytest.mark.parametrize("normal", [(0.0, 0.0, 1.0), (0.3, -0.2, 1.0)], ids=["fronto", "slanted"])
def test_plane_sweep_recovers_plane_depth(normal):
    ref, srcs, gt = plane_views(np.array(normal), 3.0, SRC_POSES)
    res = plane_sweep(ref, srcs, K, np.eye(4), SRC_POSES, (1.5, 6.0), num_depths=64)
    valid = res.depth > 0
    assert valid.mean() > 0.9
    rel = np.abs(res.depth[valid] - gt[valid]) / gt[valid]
    assert (rel < 0.02).mean() > 0.9
    assert res.confidence.min() >= 0 and res.confidence.max() <= 1
    assert np.median(res.confidence[valid]) > 0.5


def test_plane_sweep_two_views_and_textureless_is_invalid():
    ref, srcs, gt = plane_views(np.array([0.0, 0.0, 1.0]), 2.5, SRC_POSES[:1])
    res = plane_sweep(ref, srcs, K, np.eye(4), SRC_POSES[:1], (1.2, 5.0), num_depths=48)
    valid = res.depth > 0
    rel = np.abs(res.depth[valid] - gt[valid]) / gt[valid]
    assert (rel < 0.02).mean() > 0.9
    flat = np.full_like(ref, 128)
    res = plane_sweep(flat, [flat], K, np.eye(4), SRC_POSES[:1], (1.2, 5.0), num_depths=16)
    assert (res.depth > 0).mean() < 0.01 and res.confidence.max() == 0


def test_inverse_depth_samples_are_uniform_in_inverse_depth():
    d = inverse_depth_samples(1.0, 4.0, 4)
    np.testing.assert_allclose(1 / d, [1.0, 0.75, 0.5, 0.25], rtol=1e-6)


def _plane_depth(wfc: np.ndarray, dist: float) -> np.ndarray:
    """Depth map of the world plane z = dist seen from a camera (fronto-parallel-ish)."""
    h, w = 60, 80
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K_SMALL).T @ wfc[:3, :3].T  # world dirs
    return ((dist - wfc[2, 3]) / rays[..., 2]).astype(np.float32)


K_SMALL = np.array([[70.0, 0, 40], [0, 70.0, 30], [0, 0, 1]])


def test_consistency_filter_keeps_consistent_and_rejects_inconsistent():
    cams = [pose(0.0), pose(0.1), pose(-0.1), pose(0.0, 0.1)]
    depths = [_plane_depth(c, 2.0) for c in cams]
    keep, fused = consistency_filter(depths[0], cams[0], depths[1:], cams[1:], K_SMALL, min_views=2)
    assert keep.mean() > 0.9
    np.testing.assert_allclose(fused[keep], depths[0][keep], rtol=2e-3)
    # The reference claims a surface 5% further than everyone else sees it.
    keep, _ = consistency_filter(depths[0] * 1.05, cams[0], depths[1:], cams[1:], K_SMALL, min_views=2)
    assert keep.sum() == 0
    # Consistent with only one neighbour: rejected when two are required.
    bad = [depths[1], depths[2] * 1.1, depths[3] * 0.9]
    keep, _ = consistency_filter(depths[0], cams[0], bad, cams[1:], K_SMALL, min_views=2)
    assert keep.sum() == 0
    keep, _ = consistency_filter(depths[0], cams[0], bad, cams[1:], K_SMALL, min_views=1)
    assert keep.mean() > 0.5


def test_backproject_project_roundtrip():
    wfc = pose(0.3, -0.1, 0.2, yaw_deg=10)
    depth = np.full((60, 80), 2.0, np.float32)
    pts = backproject(depth, K_SMALL, wfc)
    uv, z = project(pts, K_SMALL, wfc)
    v, u = np.meshgrid(np.arange(60) + 0.5, np.arange(80) + 0.5, indexing="ij")
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-9)
    np.testing.assert_allclose(z, 2.0)


def test_voxel_downsample_by_hand():
    pts = np.array([[0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [1.5, 0.2, 0.2], [-0.5, 0.0, 0.0]], np.float32)
    cols = np.array([[0, 0, 0], [100, 50, 20], [7, 7, 7], [9, 9, 9]], np.uint8)
    conf = np.array([0.2, 0.9, 0.5, 0.1], np.float32)
    fid = np.array([4, 2, 1, 3], np.int32)
    out = voxel_downsample(PointSet(pts, cols, conf, fid), 1.0)
    assert len(out) == 3
    row = np.argmin(np.linalg.norm(out.points - [0.2, 0.2, 0.2], axis=1))
    np.testing.assert_allclose(out.points[row], [0.2, 0.2, 0.2], atol=1e-6)
    np.testing.assert_array_equal(out.colors[row], [50, 25, 10])
    assert out.confidence[row] == pytest.approx(0.9) and out.frame_id[row] == 2
    assert sorted(out.frame_id.tolist()) == [1, 2, 3]


def test_statistical_outliers_removes_far_points():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(10) * 0.1] * 3, indexing="ij"), -1).reshape(-1, 3)
    pts = np.concatenate([grid + rng.normal(0, 0.005, grid.shape), [[5.0, 5, 5], [-3.0, 0, 0]]])
    keep = statistical_outliers(pts, k=8, std_ratio=2.0)
    assert not keep[-2:].any()
    assert keep[:-2].mean() > 0.98


def test_view_selection_and_depth_range():
    scores = np.array([[0, 5, 1, 0], [5, 0, 3, 2], [1, 3, 0, 9], [0, 2, 9, 0]], float)
    nb = select_neighbours(scores, 2)
    assert nb[0].tolist() == [1, 2] and nb[3].tolist() == [2, 1]
    pts = np.concatenate([np.zeros((50, 2)), np.linspace(2, 4, 50)[:, None]], 1)
    near, far = depth_range(np.eye(4), pts, np.arange(50), (0.1, 100.0), pct=(0, 100), margin=1.0)
    assert near == pytest.approx(2.0) and far == pytest.approx(4.0)



@pytest.mark.parametrize("shape,r", [((5, 1, 24, 31), 3), ((2, 1, 9, 40), 1), ((3, 1, 4, 5), 3), ((1, 1, 1, 1), 2)])
def test_box_mean_averages_the_window_inside_the_image(shape, r):
    """The running-sum box mean equals the brute-force mean over each window clipped to the image
    (windows larger than the image included) and, where the pool accepts the padding,
    avg_pool2d without padded counts (the implementation it replaced)."""
    import torch
    import torch.nn.functional as F
    from ov3r.core.geometry.sfm.plane_sweep import _box

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    H, W = shape[-2:]
    brute = torch.stack([torch.stack([x[..., max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean((-2, -1))
                                      for j in range(W)], -1) for i in range(H)], -2)
    got = _box(x, r)
    assert torch.allclose(got, brute, atol=1e-6)
    if min(H, W) > r:
        pool = F.avg_pool2d(x, (1, 2 * r + 1), stride=1, padding=(0, r), count_include_pad=False)
        pool = F.avg_pool2d(pool, (2 * r + 1, 1), stride=1, padding=(r, 0), count_include_pad=False)
        assert torch.allclose(got, pool, atol=1e-6)


@pytest.mark.parametrize("sources,k", [(4, 2), (3, 2), (2, 2), (5, 1), (4, 3), (1, 2)])
def test_mean_of_the_best_sources_equals_topk(sources, k):
    """The best-k average of the sources' costs (occlusion robustness) is topk's, without stacking them."""
    import torch
    from ov3r.core.geometry.sfm.plane_sweep import mean_of_smallest

    g = torch.Generator().manual_seed(sources * 10 + k)
    costs = [torch.rand(6, 7, 9, generator=g) for _ in range(sources)]
    costs[0][0, 0, 0] = costs[-1][0, 0, 0]  # a tie
    want = torch.stack(costs).topk(min(k, sources), dim=0, largest=False).values.mean(0)
    assert torch.allclose(mean_of_smallest([c.clone() for c in costs], k), want, atol=1e-7)
