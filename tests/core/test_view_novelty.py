"""Which keyframes the semantics stage describes (``semantics.view_novelty``), on a ray-cast room."""

from __future__ import annotations

import numpy as np
from ov3r.core.geometry.sfm.depth_filter import backproject
from ov3r.core.scene import Cameras
from ov3r.core.semantics.view_novelty import novel_keyframes
from sfm_synthetic import room_orbit


def _sweep_twice():
    """A 150-degree arc of 6 views, then the same arc again: the cloud and 12 keyframes."""
    K, poses, _, depths = room_orbit(n=6, w=160, h=120, arc_deg=150.0)
    pts = np.concatenate([backproject(d, K, p)[::3] for d, p in zip(depths, poses)])
    poses = np.concatenate([poses, poses])
    cams = Cameras(np.repeat(K[None], len(poses), 0).astype(np.float32), poses.astype(np.float32),
                   np.arange(len(poses), dtype=np.float64), np.arange(len(poses), dtype=np.int32), (160, 120))
    return pts, cams


def test_a_second_sweep_over_the_same_views_is_not_described_again():
    pts, cams = _sweep_twice()
    assert novel_keyframes(pts, cams, 0.0).all()  # off: every keyframe
    once = novel_keyframes(pts, cams, 0.2, cover=1)
    assert once[0] and not once[6:].any(), once  # the second pass shows nothing new
    assert 2 <= once[:6].sum() <= 6
    twice = novel_keyframes(pts, cams, 0.2, cover=2)  # each surface wanted from two keyframes
    assert twice.sum() > once.sum() and twice[6:].any()
