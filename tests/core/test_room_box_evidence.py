"""The room's box holds its sides against the evidence: a dense layer in front of a plain, barely measured
wall is not taken for the wall where the floor runs on beyond it, and a furniture top over an unmeasured floor
is not taken for the floor."""

from __future__ import annotations

import numpy as np

from ov3r.core.scene.align import alignment_transform, floor_under_furniture, transform_points
from ov3r.core.scene.room_box import find_room_box

W, D, H = 5.0, 4.0, 2.6  # the room: x in [0, W], y in [0, D], z in [0, H]


def _plane(rng, n, lo, hi):
    return rng.uniform(lo, hi, (n, 3))


def _cameras() -> np.ndarray:
    """(12,4,4) cameras on a loop of radius 0.9 m around the room's centre, 1.5 m up."""
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    wfc = np.repeat(np.eye(4)[None], len(a), 0)
    wfc[:, :3, 3] = np.c_[W / 2 + 0.9 * np.cos(a), D / 2 + 0.9 * np.sin(a), np.full(len(a), 1.5)]
    return wfc


def _room(rng, plain_far_wall: bool, floor_to_wall: bool) -> np.ndarray:
    """(N,3) measured points: a textured wall at x = 0, the side walls and the ceiling textured up to x = 4 (all
    of them when the far wall is textured), a sofa's front at x = 4.3 before the far wall x = W (plain: 20
    points, or textured), and a sparsely measured floor that reaches the far wall or stops at the sofa."""
    end = 4.0 if plain_far_wall else W
    parts = [_plane(rng, 9000, (0, 0, 0), (0, D, H)), _plane(rng, 9000, (0, 0, 0), (end, 0, H)),
             _plane(rng, 9000, (0, D, 0), (end, D, H)), _plane(rng, 6000, (0, 0, H), (end, D, H)),
             _plane(rng, 4000, (4.3, 0.5, 0), (4.3, 3.5, 0.9))]  # the sofa's front
    parts.append(_plane(rng, 20 if plain_far_wall else 9000, (W, 0, 0), (W, D, H)))
    parts.append(_plane(rng, 1500, (0, 0, 0), (W if floor_to_wall else 4.25, D, 0)))
    return np.concatenate(parts)


def _x_side(box) -> float | None:
    """The offset of the box's +x side (where its normal is +x), or None when it is open."""
    k = np.flatnonzero(box.normals[:, 0] > 0.99)
    return float(box.offsets[k[0]]) if k.size else None


def test_a_textured_far_wall_is_found():
    box = find_room_box(_room(np.random.default_rng(0), plain_far_wall=False, floor_to_wall=True), _cameras(),
                        bin_size=0.05, axes=np.eye(3))
    assert abs(_x_side(box) - W) < 0.05


def test_a_sofa_before_a_plain_wall_is_not_the_wall_when_the_floor_runs_on():
    pts = _room(np.random.default_rng(1), plain_far_wall=True, floor_to_wall=True)
    box = find_room_box(pts, _cameras(), bin_size=0.05, axes=np.eye(3))
    assert abs(_x_side(box) - W) < 0.1  # the floor's edge, not the sofa's front at 4.3
    # without that evidence the outermost dense layer stands (nothing tells the sofa from a wall)
    before = find_room_box(pts, _cameras(), bin_size=0.05, axes=np.eye(3), floor_reach=1.1)
    assert abs(_x_side(before) - 4.3) < 0.1


def _kitchen(rng) -> np.ndarray:
    """(N,3) a kitchen whose plain floor went unmeasured: an island top at 0.75 m holding half the points, its
    four sides and the counters' fronts down to the floor (5 % of the points), the walls above the counters."""
    return np.concatenate([
        _plane(rng, 20000, (1.6, 1.0, 0.75), (3.4, 2.8, 0.75)),  # the island's top
        _plane(rng, 400, (1.6, 1.0, 0.0), (1.6, 2.8, 0.75)), _plane(rng, 400, (3.4, 1.0, 0.0), (3.4, 2.8, 0.75)),
        _plane(rng, 400, (1.6, 1.0, 0.0), (3.4, 1.0, 0.75)), _plane(rng, 400, (1.6, 2.8, 0.0), (3.4, 2.8, 0.75)),
        _plane(rng, 400, (0.6, 0, 0.0), (0.6, D, 0.9)),  # the counters' fronts (plain: sparsely measured)
        _plane(rng, 4000, (0, 0, 0.9), (0, D, H)), _plane(rng, 4000, (W, 0, 0.9), (W, D, H)),
        _plane(rng, 4000, (0, 0, 0.9), (W, 0, H)), _plane(rng, 4000, (0, D, 0.9), (W, D, H)),
        _plane(rng, 60, (0, 0, 0), (W, D, 0)),  # a few floor points
    ])


def test_a_kitchen_island_is_not_the_floor(monkeypatch):
    import ov3r.core.scene.align as align

    pts = _kitchen(np.random.default_rng(3))
    a = alignment_transform(pts, _cameras(), axes=np.eye(3))
    floor_z = transform_points(np.array([[2.5, 2.0, 0.0]]), a)[0, 2]  # where the true floor lands
    assert abs(floor_z) < 0.03
    monkeypatch.setattr(align, "FURNITURE_TOP_BELOW", 2.0)  # without the rule the island's top is the floor
    a = alignment_transform(pts, _cameras(), axes=np.eye(3))
    assert abs(transform_points(np.array([[2.5, 2.0, 0.0]]), a)[0, 2] + 0.75) < 0.03


def test_scattered_depth_under_a_floor_does_not_move_it():
    rng = np.random.default_rng(4)
    h = np.concatenate([rng.normal(0, 0.002, 3000), rng.uniform(0.1, 2.5, 20000), rng.uniform(-1.5, -0.1, 1500)])
    across = rng.uniform(0, 4, (h.size, 2))  # scattered in a top view: no faces
    assert floor_under_furniture(h, across, 0.0, 0.01) == 0.0
    faces = across.copy()
    faces[h < 0, 0] = rng.choice([0.5, 1.5, 2.5], (h < 0).sum())  # the same depths on three vertical faces
    assert floor_under_furniture(h, faces, 0.0, 0.01) < -1.0
