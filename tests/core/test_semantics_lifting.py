"""Projection / z-buffer, and 2D masks -> 3D segments on boxes seen from a ring of cameras."""

import numpy as np
import pytest
from ov3r.core.scene import load_scene, save_scene
from ov3r.core.semantics.lifting import LiftSettings, _pair_cos, lift_into_scene, lift_masks, segment_table
from ov3r.core.semantics.projection import project, render_depth, visible_points, zbuffer
from semantics_synthetic import box_scene, gt_masks, instance_descriptors, render_instances


def test_projection_pixel_convention_and_zbuffer():
    K = np.array([[10, 0, 2], [0, 10, 2], [0, 0, 1]], float)  # 4x4 image, centre at (2, 2)
    pts = np.array([[0, 0, 1], [0, 0, 2], [-0.15, -0.15, 1], [0, 0, -1]], np.float32)
    idx, u, v, z = project(pts, K, np.eye(4), (4, 4))
    assert list(idx) == [0, 1, 2]
    assert (u[0], v[0]) == (2, 2) and (u[2], v[2]) == (0, 0)  # x = 10*-0.15+2 = 0.5: pixel 0 (centre)
    depth, near = zbuffer(u, v, z, (4, 4))
    assert depth[2, 2] == 1 and near[2, 2] == 0 and near[1, 1] == -1
    vis, _, _ = visible_points(pts, K, np.eye(4), (4, 4), radius=0)
    assert sorted(vis) == [0, 2]  # the point behind is occluded, the one behind the camera is out
    d = render_depth(pts, K, np.eye(4), (4, 4), radius=0, max_gap=1)
    assert d[2, 2] == 1 and np.isnan(d[3, 0]) and d[1, 2] == 1  # filled within 1 px only


def _frames(scene, inst, size=None):
    fm, fd = [], []
    rng = np.random.default_rng(0)
    for f in range(len(scene.cameras)):
        lab = render_instances(scene, inst, f, size)
        ms = gt_masks(scene, inst, f, size)
        fm.append(ms)
        fd.append(instance_descriptors(ms, lab, rng=rng))
    return fm, fd


def _purity(seg, inst):
    """For each GT instance: (its majority segment, fraction of its segmented points in it);
    points no camera sees stay -1 and are not counted."""
    out = {}
    for i in np.unique(inst):
        s, c = np.unique(seg[(inst == i) & (seg >= 0)], return_counts=True)
        out[int(i)] = (int(s[np.argmax(c)]), c.max() / c.sum())
    return out


def test_each_box_becomes_one_segment_across_frames():
    scene, inst = box_scene()
    fm, fd = _frames(scene, inst)
    res = lift_into_scene(scene, fm, fd, "stub")
    pur = _purity(scene.segment_id, inst)
    assert len({s for s, _ in pur.values()}) == 4 and all(s >= 0 for s, _ in pur.values())
    assert all(frac > 0.95 for _, frac in pur.values())
    assert len(scene.segments) == 4  # floor + 3 boxes, each merged over all the frames that see it
    seg = scene.segments
    for i in (1, 2, 3):
        s = pur[i][0]
        # descriptor of box i = one-hot i (see instance_descriptors), centroid near the box
        assert np.argmax(seg.descriptor[s]) == i
        from semantics_synthetic import BOXES

        assert np.linalg.norm(seg.box_center[s] - BOXES[i - 1][0]) < 0.15
        assert np.allclose(np.sort(seg.box_extent[s]), np.sort(BOXES[i - 1][1]), atol=0.2)
        assert np.allclose(seg.box_axes[s] @ seg.box_axes[s].T, np.eye(3), atol=1e-4)
    assert all(len(m) == len(fm[f]) for f, m in enumerate(res.mask_segment))
    assert scene.metadata["text_space"] == "stub" and seg.label == [""] * 4


def test_masks_at_another_resolution_and_roundtrip(tmp_path):
    scene, inst = box_scene()
    fm, fd = _frames(scene, inst, size=(48, 36))  # half the cameras' resolution
    lift_into_scene(scene, fm, fd, "stub")
    assert len(scene.segments) == 4
    back = load_scene(save_scene(scene, tmp_path / "s.ov3r.npz"))
    assert np.array_equal(back.segment_id, scene.segment_id)
    assert np.allclose(back.segments.descriptor, scene.segments.descriptor)


def test_descriptors_keep_touching_objects_apart():
    """Without descriptors, a mask that leaks over two boxes in one frame may bridge them;
    the descriptor test keeps the segments apart when the masks disagree."""
    scene, inst = box_scene()
    fm, fd = _frames(scene, inst)
    res = lift_masks(scene.points, scene.cameras, fm, fd, LiftSettings(merge_cos=0.6))
    pur = _purity(res.segment_id, inst)
    assert len({s for s, _ in pur.values()}) == 4
    # every mask of a box maps to that box's segment
    for f in range(len(fm)):
        lab = render_instances(scene, inst, f)
        for k, m in enumerate(fm[f]):
            i = int(np.bincount(lab[m] + 1).argmax() - 1)
            assert res.mask_segment[f][k] == pur[i][0]


def test_without_descriptors_and_empty_frames():
    scene, inst = box_scene(n_cams=4)
    fm, _ = _frames(scene, inst)
    fm[1] = []  # a keyframe without masks
    res = lift_masks(scene.points, scene.cameras, fm, None)
    assert res.descriptor.shape[1] == 0
    pur = _purity(res.segment_id, inst)
    assert len({s for s, _ in pur.values()}) == 4
    with pytest.raises(ValueError):
        lift_masks(scene.points, scene.cameras, fm[:2], None)


def test_segment_table_boxes():
    rng = np.random.default_rng(0)
    p = rng.uniform(-1, 1, (5000, 3)) * [2, 0.5, 0.1]
    c, s = np.cos(0.5), np.sin(0.5)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    pts = (p @ R.T + [1, 2, 3]).astype(np.float32)
    seg = np.zeros(5000, np.int32)
    seg[:10] = -1
    t = segment_table(pts, seg, np.ones((1, 4), np.float32))
    assert t.point_count[0] == 4990
    assert np.allclose(t.box_center[0], [1, 2, 3], atol=0.05)
    assert np.allclose(t.box_extent[0], [4, 1, 0.2], atol=0.05)
    assert abs(abs(t.box_axes[0, 0] @ R[:, 0]) - 1) < 1e-3
    assert np.linalg.det(t.box_axes[0]) == pytest.approx(1, abs=1e-4)


def test_robust_to_over_and_under_segmented_frames():
    """Frames where the sofa is cut in two, and one where it leaks into the floor."""
    scene, inst = box_scene()
    fm, fd = _frames(scene, inst)
    rng = np.random.default_rng(1)
    for f in (0, 2, 4):  # over-segmentation: the sofa's mask split into left / right halves
        lab = render_instances(scene, inst, f)
        k = next((k for k, m in enumerate(fm[f]) if np.bincount(lab[m] + 1).argmax() - 1 == 1), None)
        if k is None:
            continue
        m = fm[f].pop(k)
        cols = np.flatnonzero(m.any(0))
        mid = cols[len(cols) // 2]
        left, right = m.copy(), m.copy()
        left[:, mid:] = False
        right[:, :mid] = False
        fm[f] += [left, right]
        fd[f] = instance_descriptors(fm[f], lab, rng=rng)
    lab = render_instances(scene, inst, 1)  # under-segmentation: sofa + floor in one mask
    fm[1] = [(lab == 0) | (lab == 1)] + [(lab == i) for i in (2, 3) if (lab == i).sum() >= 10]
    fd[1] = instance_descriptors(fm[1], lab, rng=rng)
    # the segment merge at a cosine these noisy stand-in descriptors reach (the default is chosen on rendered rooms)
    res = lift_masks(scene.points, scene.cameras, fm, fd, LiftSettings(segment_merge_cos=0.85))
    pur = _purity(res.segment_id, inst)
    assert len({s for s, _ in pur.values()}) == 4
    assert all(frac > 0.9 for _, frac in pur.values())


def test_pair_cosines_in_chunks_equal_the_whole_gather():
    """The chunked pair dot products (bounded memory) are exactly the one-shot ones, any chunk size."""
    rng = np.random.default_rng(3)
    d = rng.standard_normal((50, 16)).astype(np.float32)
    a, b = rng.integers(0, 50, 1000), rng.integers(0, 50, 1000)
    whole = (d[a] * d[b]).sum(1)
    for chunk in (1, 7, 999, 5000):
        assert np.array_equal(_pair_cos(d, a, b, chunk), whole), chunk
    assert _pair_cos(d, a[:0], b[:0]).shape == (0,)


def test_fill_gives_stray_points_their_nearest_segment_within_the_radius():
    from ov3r.core.semantics.lifting import fill_unsegmented

    pts = np.array([[0, 0, 0], [0.1, 0, 0], [1, 0, 0], [0.12, 0, 0], [0.95, 0, 0], [5, 0, 0]], np.float32)
    seg = np.array([0, 0, 1, -1, -1, -1], np.int32)
    out = fill_unsegmented(pts, seg, 0.1)
    assert out.tolist() == [0, 0, 1, 0, 1, -1]  # the far point stays without a segment
    assert seg.tolist() == [0, 0, 1, -1, -1, -1]  # the input is not changed
    assert fill_unsegmented(pts, np.full(6, -1, np.int32), 1.0).tolist() == [-1] * 6
    # in the stage's lifting: a box scene with some points masked out of every frame
    scene, inst = box_scene()
    fm, fd = _frames(scene, inst)
    lift_into_scene(scene, fm, fd, "stub")
    plain = scene.segment_id.copy()
    scene2, _ = box_scene()
    lift_into_scene(scene2, fm, fd, "stub", LiftSettings(fill_radius=3.0))
    kept = plain >= 0
    filled = ~kept & (scene2.segment_id >= 0)
    assert filled.sum() > 0.5 * (~kept).sum()  # most stray points lie near a segment here
    assert (scene2.segment_id[kept] == plain[kept]).all()  # segmented points keep their segment
    # a filled point joins the segment of its own object (the segment's majority instance)
    major = {s: np.bincount(inst[plain == s]).argmax() for s in np.unique(plain[kept])}
    right = np.array([major[s] == i for s, i in zip(scene2.segment_id[filled], inst[filled])])
    assert right.mean() > 0.8, right.mean()
    assert scene2.segments.point_count.sum() == (scene2.segment_id >= 0).sum()
