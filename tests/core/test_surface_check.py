"""The sweep along the room's box (surface_check) on a ray-cast room with a box standing in it."""

from __future__ import annotations

import functools

import numpy as np
import torch
from ov3r.core.geometry.sfm.depth_filter import pixel_rays
from ov3r.core.geometry.sfm.plane_sweep import to_gray, warp_to_planes
from ov3r.core.geometry.sfm.surface_check import box_factors, surface_costs
from ov3r.core.scene.room_box import RoomBox
from sfm_synthetic import room_orbit

ROOM = RoomBox(np.concatenate([-np.eye(3), np.eye(3)]), np.array([2.0, 1.5, 2.0, 2.0, 1.5, 2.0]))  # render_room's walls


@functools.lru_cache(maxsize=1)
def _sweep():
    """Three views 5 degrees apart; the middle one's costs along the room's box, its true and box depth."""
    K, poses, imgs, depths = room_orbit(n=3, w=200, h=150, arc_deg=10.0)
    h, w = depths[1].shape
    box = ROOM.depth(poses[1], pixel_rays(K, h, w)).reshape(h, w).astype(np.float32)
    factors = box_factors(0.5, 12)
    cost, std = surface_costs(imgs[1], [imgs[0], imgs[2]], K, poses[1], [poses[0], poses[2]], box, factors)
    return factors, cost, std, depths[1], box


def test_box_factors_end_one_step_beyond_the_box():
    f = box_factors(0.5, 12)
    assert f.shape == (12,) and f[0] == np.float32(0.5) and f[-2] == np.float32(1.0) and f[-1] > 1.0
    assert np.allclose(np.diff(1.0 / f), (1.0 - 2.0) / 10)  # uniform in inverse depth


def test_a_per_pixel_depth_warps_like_the_plane_of_that_depth():
    K, poses, imgs, _ = room_orbit(n=2, w=80, h=60, arc_deg=10.0)
    src = to_gray(imgs[0])
    rel = np.linalg.inv(poses[0]) @ poses[1]
    plane, ok_p = warp_to_planes(src, K, K, rel, np.array([2.5], np.float32), 60, 80)
    per_pixel, ok_d = warp_to_planes(src, K, K, rel, np.full((1, 60, 80), 2.5, np.float32), 60, 80)
    assert torch.equal(ok_p, ok_d) and torch.allclose(plane, per_pixel)


def test_the_room_matches_on_its_box_and_the_box_in_front_does_not():
    factors, cost, std, gt, box = _sweep()
    on = cost[len(factors) - 2]
    room = (np.abs(gt - box) < 0.01 * box) & (std > 0.01)
    front = (gt < 0.8 * box) & (std > 0.01)
    assert room.mean() > 0.3 and front.mean() > 0.1
    # The room's walls, floor and ceiling at any slant: the best match is on the box, and a good one.
    assert (cost.argmin(0)[room] >= len(factors) - 3).mean() > 0.9
    assert np.median(1.0 - on[room]) > 0.8
    # The box standing in the room matches better at a nearer copy of the room's box.
    assert (on[front] - cost.min(0)[front] > 0.05).mean() > 0.9


def test_no_hypothesis_costs_nothing_either_way():
    K, poses, imgs, _ = room_orbit(n=2, w=80, h=60, arc_deg=10.0)
    none = np.full((60, 80), np.inf, np.float32)
    cost, _ = surface_costs(imgs[1], [imgs[0]], K, poses[1], [poses[0]], none, box_factors(0.5, 6))
    assert (cost == 1.0).all()
