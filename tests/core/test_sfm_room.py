"""End to end on a ray-cast textured room (no Blender needed): poses and surface vs truth."""

from __future__ import annotations

import numpy as np
from ov3r.core.bench.metrics import apply_sim3, umeyama_sim3
from ov3r.core.geometry import Keyframe, get_engine
from ov3r.core.geometry.sfm.depth_filter import backproject
from ov3r.core.jobs import JobContext
from scipy.spatial import cKDTree
from sfm_synthetic import room_orbit


def test_room_reconstruction_with_known_intrinsics():
    K, poses, imgs, depths = room_orbit(n=12, w=256, h=192, arc_deg=60.0)
    kfs = [Keyframe(im, i, i / 10) for i, im in enumerate(imgs)]
    partials = []
    rec = get_engine("sfm", num_depths=48, partial_every=3).reconstruct(
        kfs, JobContext(partial_fn=partials.append), intrinsics=K)
    assert rec.extras["dropped_keyframes"] == 0 and len(rec.extras["registered_keyframes"]) == 12
    # every other registered keyframe is a view (a camera of the scene, the dense stage's); the rest are
    # registered frames of the path
    np.testing.assert_array_equal(rec.cameras.frame_index, [0, 2, 4, 6, 8, 10])
    np.testing.assert_array_equal(np.sort(rec.extras["frame_poses"]["index"]), [1, 3, 5, 7, 9, 11])
    np.testing.assert_allclose(rec.cameras.intrinsics[0], K, rtol=1e-5)  # fixed, not refined
    assert partials and len(partials[-1]) > 0
    index = np.concatenate([rec.cameras.frame_index, rec.extras["frame_poses"]["index"]])
    centres = np.concatenate([rec.cameras.centers(), rec.extras["frame_poses"]["world_from_camera"][:, :3, 3]])
    gt_c = poses[index, :3, 3]
    s, R, t = umeyama_sim3(centres.astype(np.float64), gt_c)
    gt = np.concatenate([backproject(d, K, p)[::5] for d, p in zip(depths, poses)])
    extent = float(np.linalg.norm(np.percentile(gt, 98, 0) - np.percentile(gt, 2, 0)))
    ate = np.sqrt(((apply_sim3(centres, s, R, t) - gt_c) ** 2).sum(1).mean())
    assert ate / extent < 0.01
    dist, _ = cKDTree(gt).query(apply_sim3(rec.points, s, R, t), workers=2)
    assert len(rec.points) > 20000
    assert (dist < 0.02 * extent).mean() > 0.9
    assert rec.points.dtype == np.float32 and rec.colors.dtype == np.uint8
    assert rec.frame_id.min() >= 0 and rec.frame_id.max() < len(rec.cameras)
    assert 0 <= rec.confidence.min() and rec.confidence.max() <= 1


def test_a_focal_length_known_beforehand_is_kept_fixed_or_refined_as_asked():
    """run_sfm's focal_px: "fixed" keeps it through the mapping (the distortion still refined), "start" lets
    the self-calibration move it towards the truth."""
    from ov3r.core.geometry.sfm.colmap_sfm import run_sfm

    K, _, imgs, _ = room_orbit(n=10, w=256, h=192, arc_deg=60.0)
    given = 1.08 * K[0, 0]
    fixed = run_sfm(list(imgs), JobContext(), focal_px=given, focal_mode="fixed", mapping_runs=1)
    assert abs(fixed.K[0, 0] / given - 1) < 1e-9
    start = run_sfm(list(imgs), JobContext(), focal_px=given, focal_mode="start", mapping_runs=1)
    assert abs(start.K[0, 0] / K[0, 0] - 1) < abs(given / K[0, 0] - 1) / 2  # refined, most of the way back
