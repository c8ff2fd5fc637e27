"""End to end on the Cycles-rendered orbit fixture: video -> keyframes -> sfm engine -> metrics.

Renders the fixture once into the cache (~2 min on 2 cores), then ~1 min per run.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
from ov3r.core.bench.metrics import apply_sim3, ate_rmse
from ov3r.core.scenegen.orbit import OrbitConfig, cached_orbit, read_video_frames
from ov3r.core.geometry import Keyframe, get_engine
from ov3r.core.jobs import JobContext
from scipy.spatial import cKDTree

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="rendering the fixture needs bpy"),
]


def test_sfm_orbit_accuracy():
    fx = cached_orbit(OrbitConfig())
    frames = read_video_frames(fx.video_path)  # PyAV decode
    keyframes = [Keyframe(im, i, float(fx.timestamps[i])) for i, im in enumerate(frames)]
    partials = []
    t0 = time.perf_counter()
    rec = get_engine("sfm").reconstruct(keyframes, JobContext(partial_fn=partials.append))  # intrinsics unknown
    total = time.perf_counter() - t0

    reg = rec.extras["registered_keyframes"]
    assert len(reg) >= 0.9 * len(keyframes)
    gt_centres = fx.camera_centers[rec.cameras.frame_index].astype(np.float64)  # the views among them
    ate, sim3 = ate_rmse(rec.cameras.centers().astype(np.float64), gt_centres)
    dist, _ = cKDTree(fx.gt_points).query(apply_sim3(rec.points, *sim3), workers=2)
    near = float((dist < 0.02 * fx.extent).mean())
    f_err = abs(rec.cameras.intrinsics[0, 0, 0] / fx.intrinsics[0, 0] - 1)
    print(f"\norbit: {len(reg)}/{len(keyframes)} registered, {len(rec.points)} points, "
          f"ATE/extent {ate / fx.extent:.5f}, within 2% of extent {near:.4f}, "
          f"within 0.5% {(dist < 0.005 * fx.extent).mean():.4f}, focal error {f_err:.4f}, "
          f"total {total:.1f}s, stages " + ", ".join(f"{k} {v:.1f}s" for k, v in rec.extras["timings"].items()))
    assert ate / fx.extent < 0.05
    assert near >= 0.8
    assert len(rec.points) > 50_000
    assert partials and len(partials[-1]) > 0
    mapping = rec.extras["mapping"]  # a textured orbit: the first two seeded mapping runs agree
    assert mapping["agreed"] and len(mapping["runs"]) == 2 and mapping["pairs"][0][2] >= 0.8
