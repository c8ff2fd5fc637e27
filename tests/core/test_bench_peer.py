"""The peer benchmark's scoring and table (the runs themselves are benchmarks, not tests)."""

from __future__ import annotations

import numpy as np
from ov3r.core.bench.peer import _table, score_path
from ov3r.core.scene.cameras import Cameras
from ov3r.core.scene.frame_path import INTERPOLATED, REGISTERED, UNPLACED, FramePath


def _path(centres: np.ndarray, status) -> FramePath:
    f = len(centres)
    wfc = np.tile(np.eye(4, dtype=np.float32), (f, 1, 1))
    wfc[:, :3, 3] = centres
    cams = Cameras(np.tile(np.eye(3, dtype=np.float32), (f, 1, 1)), wfc, np.arange(f) / 10.0,
                   np.arange(f, dtype=np.int32), (64, 48))
    return FramePath(cams, np.asarray(status, np.uint8))


def test_score_path_fits_a_similarity_on_placed_frames_and_charges_the_rest():
    rng = np.random.default_rng(0)
    gt_c = rng.normal(size=(10, 3))
    gt = np.tile(np.eye(4), (10, 1, 1))
    gt[:, :3, 3] = gt_c
    pred = 0.5 * gt_c + 3.0  # the same path at another scale and place
    pred[8:] += 1.0  # two frames that were not placed, off by 1 (x 2 at GT scale) along each axis
    s = score_path(_path(pred, [REGISTERED] * 4 + [INTERPOLATED] * 4 + [UNPLACED] * 2), gt)
    assert s["placed"] == 0.8
    assert s["ate_placed_cm"] < 1e-3
    np.testing.assert_allclose(s["ate_cm"], 100 * np.sqrt(2 * 12 / 10), rtol=1e-4)


def test_table_gives_medians_ranges_and_failures():
    rows = [{"scene": "a", "side": "ov3r", "s": 1, "placed": 1.0, "ate_cm": 1.0, "ate_placed_cm": 1.0, "warned": None},
            {"scene": "a", "side": "ov3r", "s": 3, "placed": 0.5, "ate_cm": 5.0, "ate_placed_cm": 2.0,
             "warned": "only 50% of the video was placed"},
            {"scene": "a", "side": "ov3r", "s": 2, "placed": 0.9, "ate_cm": 2.0, "ate_placed_cm": 1.5, "warned": None},
            {"scene": "a", "side": "pycolmap", "s": 1, "placed": 0.0, "error": "RuntimeError: no model"}]
    lines = _table(rows).splitlines()
    assert lines[2] == "| a | ov3r | 3 | 90.0 | 2.00 (1.00-5.00) | 1.50 | 1 of 3 | 2.0 |"
    assert lines[3].startswith("| a | pycolmap | 1 | 0 | failed: RuntimeError: no model")
    assert lines[4] == "ov3r: mean placed 90.0 %, mean ATE 2.00 cm over 1 videos (medians of the runs)"
