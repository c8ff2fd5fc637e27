"""Planar fills of blank surfaces and the room's box, on a ray-cast room with known depth."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from ov3r.core.geometry.sfm.depth_filter import backproject, pixel_rays
from ov3r.core.geometry.sfm.planar_fill import fill_planar, homogeneous_regions
from ov3r.core.scene.room_box import RoomBox, find_room_box
from sfm_synthetic import room_orbit

ROOM = RoomBox(np.concatenate([-np.eye(3), np.eye(3)]), np.array([2.0, 1.5, 2.0, 2.0, 1.5, 2.0]))  # render_room's walls


@functools.lru_cache(maxsize=1)
def _blank_wall_view():
    """One view of the room with its back wall (z = -2) painted a single grey: K, pose, image, true depth,
    box depth, the wall's mask, its outline (corners, the edge along the box in front of it), the depth a
    plane sweep would measure (all but the wall, and the wall's outline)."""
    K, poses, imgs, depths = room_orbit(n=1, w=200, h=150, arc_deg=0.0)
    wfc, img, gt = poses[0], imgs[0].copy(), depths[0]
    h, w = gt.shape
    box = ROOM.depth(wfc, pixel_rays(K, h, w)).reshape(h, w)
    hit = backproject(gt, K, wfc).reshape(h, w, 3)
    back = (np.abs(gt - box) < 1e-3 * gt) & (np.abs(hit[..., 2] + 2.0) < 5e-3)
    img[back] = (205, 200, 195)
    outline = back & ~cv2.erode(back.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
    measured = np.where(~back | outline, gt, 0).astype(np.float32)
    return K, wfc, img, gt, box, back, outline, measured


def test_box_depth_is_where_the_rays_leave_the_room():
    K, wfc, img, gt, box, back, _, _ = _blank_wall_view()
    assert back.mean() > 0.2  # the wall fills a good part of the view
    assert (gt <= box * 1.01).all()  # nothing is seen beyond the room's walls (the depth is supersampled)
    assert (np.abs(gt - box) < 1e-3 * gt).mean() > 0.3  # a third of the view is the room, the rest the box in it


def test_a_blank_wall_is_one_region():
    _, _, img, _, _, back, outline, _ = _blank_wall_view()
    labels = homogeneous_regions(img, 10, 30)
    inner = back & ~outline
    ids, counts = np.unique(labels[inner], return_counts=True)
    assert ids[counts.argmax()] > 0 and counts.max() > 0.95 * inner.sum()


@pytest.mark.parametrize("use_box", [False, True], ids=["own-plane", "room-box"])
def test_a_blank_wall_is_filled_from_its_outline(use_box):
    K, wfc, img, gt, box, back, outline, measured = _blank_wall_view()
    fill = fill_planar(measured, img, K, box_depth=box if use_box else None)
    inner = back & ~outline
    assert (fill[inner] > 0).mean() > 0.8
    got = fill > 0
    assert not (got & (measured > 0)).any()  # only missing depth is filled
    rel = np.abs(fill[got] - gt[got]) / gt[got]
    assert np.quantile(rel, 0.95) < 0.01


@pytest.mark.parametrize("use_box", [False, True], ids=["own-plane", "room-box"])
def test_an_outline_on_two_surfaces_fills_nothing(use_box):
    """Half the wall's outline measured 25 % further away: no one plane (nor the box) explains it."""
    K, wfc, img, gt, box, back, outline, measured = _blank_wall_view()
    bad = measured.copy()
    half = outline & (np.arange(bad.shape[1])[None, :] < bad.shape[1] // 2)
    bad[half] *= 1.25
    fill = fill_planar(bad, img, K, box_depth=box if use_box else None)
    assert (fill[back & ~outline] > 0).mean() < 0.05


@pytest.mark.parametrize("veto_factor", [1.0, 0.8], ids=["veto-on-box", "veto-in-front"])
def test_a_stricter_measurement_can_forbid_the_box(veto_factor):
    """Most of the wall's outline on the box, a quarter of it measured strictly (the plane sweep's, beside
    the sweep along the box): where those strict pixels lie in front of the box, something stands before
    it and the region is not filled; where they lie on it, it is."""
    K, wfc, img, gt, box, back, outline, measured = _blank_wall_view()
    quarter = outline & (np.arange(gt.shape[1])[None, :] < np.nonzero(back.any(0))[0].min() + back.any(0).sum() // 4)
    veto = np.where(quarter, measured * veto_factor, 0).astype(np.float32)
    depth = np.where(veto > 0, veto, measured).astype(np.float32)
    inner = back & ~outline
    assert (fill_planar(depth, img, K, box_depth=box)[inner] > 0).mean() > 0.8  # without the veto: filled
    assert ((fill_planar(depth, img, K, box_depth=box, veto=veto)[inner] > 0).mean() > 0.8) == (veto_factor == 1.0)


@pytest.mark.parametrize("inset", [0, 4])
def test_an_occluders_depth_along_the_outline_does_not_veto_the_wall(inset):
    """The plane sweep's window carries a foreground object's depth a few pixels past its outline into
    the wall behind it: such a band of in-front depth just inside the wall's region forbids the box only
    when the veto counts the region's every pixel, not with the inset."""
    from ov3r.core.geometry.sfm.planar_fill import PlanarFillSettings

    K, wfc, img, gt, box, back, outline, measured = _blank_wall_view()
    labels = homogeneous_regions(img, 10, 30)
    ids, counts = np.unique(labels[back], return_counts=True)
    region = labels == ids[counts.argmax()]
    band = region & ~cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # 2 px wide
    veto = np.where(band, 0.8 * gt, 0).astype(np.float32)
    depth = np.where(veto > 0, veto, measured).astype(np.float32)
    fill = fill_planar(depth, img, K, PlanarFillSettings(veto_inset_px=inset), box_depth=box, veto=veto)
    inner = back & ~outline
    assert ((fill[inner] > 0).mean() > 0.8) == (inset > 0)


def test_a_strip_of_support_spans_no_plane():
    """Only the wall's top rows measured (a line of points): its plane is not determined."""
    K, wfc, img, gt, box, back, outline, measured = _blank_wall_view()
    rows = np.nonzero(back.any(1))[0]
    strip = measured.copy()
    strip[back & (np.arange(strip.shape[0])[:, None] > rows.min() + 3)] = 0
    fill = fill_planar(strip, img, K)
    assert (fill[back & ~outline] > 0).mean() < 0.05


def test_the_room_box_is_found_in_the_dense_points():
    K, poses, imgs, depths = room_orbit(n=6, w=160, h=120, arc_deg=60.0)
    pts = np.concatenate([backproject(d, K, p)[::3] for d, p in zip(depths, poses)])
    box = find_room_box(pts, poses, bin_size=0.03)
    assert box is not None
    h, w = depths[0].shape
    for p, gt in zip(poses, depths):
        bd = box.depth(p, pixel_rays(K, h, w)).reshape(h, w)
        truth = ROOM.depth(p, pixel_rays(K, h, w)).reshape(h, w)
        room = np.abs(gt - truth) < 1e-3 * gt  # pixels that see the room's walls, floor or ceiling
        seen = np.isfinite(bd)
        assert (room & seen).sum() > 0.8 * room.sum() * 0.5  # most walls found (an unseen side stays open)
        rel = np.abs(bd[room & seen] - gt[room & seen]) / gt[room & seen]
        assert np.median(rel) < 0.01 and (rel < 0.03).mean() > 0.9
