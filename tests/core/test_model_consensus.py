"""The pick among seeded mapping runs: poses that agree up to a similarity, a folded run, a run
that kept part of the video."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from core.geometry.sfm.model_consensus import MappingRun, agreement, align, choose, needs_another_run


def _walk(n: int = 30, seed: int = 0) -> np.ndarray:
    """(n,4,4) world_from_camera of a camera walking along a gentle curve, looking about sideways."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, 3] = np.stack([3 * t, 0.4 * np.sin(3 * t), 0.05 * rng.normal(size=n)], 1)
    out[:, :3, :3] = Rotation.from_euler("y", 90 + 40 * t, degrees=True).as_matrix()
    return out


def _similar(wfc: np.ndarray, scale: float = 2.5) -> np.ndarray:
    """The same poses in another frame: rotated, scaled and moved."""
    s = np.eye(4)
    s[:3, :3] = scale * Rotation.from_euler("xyz", [20, -35, 60], degrees=True).as_matrix()
    s[:3, 3] = [1.0, -2.0, 0.5]
    out = s @ wfc
    out[:, :3, :3] /= scale
    return out


def _run(wfc: np.ndarray, registered=None, seed: int = 0, err: float = 0.8) -> MappingRun:
    reg = np.arange(len(wfc)) if registered is None else np.asarray(registered)
    return MappingRun(seed, reg, wfc[reg] if registered is not None else wfc, err)


def test_the_same_poses_in_another_frame_agree():
    wfc = _walk()
    a, b = _run(wfc), _run(_similar(wfc), seed=1)
    common, rot, centre_err, rot_err = align(a, b)
    assert len(common) == len(wfc) and centre_err.max() < 1e-9 and rot_err.max() < 1e-5
    assert agreement(a, b) == 1.0 and agreement(b, a) == 1.0


def test_a_folded_half_disagrees():
    """The second half of the path mirrored (a fold): its keyframes disagree, so the pair does."""
    wfc = _walk()
    folded = wfc.copy()
    mirror = np.diag([1.0, -1.0, 1.0, 1.0])
    folded[15:] = mirror @ folded[15:] @ np.diag([1.0, -1.0, 1.0, 1.0])
    frac = agreement(_run(wfc), _run(_similar(folded), seed=1))
    assert frac < 0.8


def test_a_run_that_kept_part_of_the_video_does_not_agree_with_the_whole():
    wfc = _walk()
    full, half = _run(wfc), _run(_similar(wfc), registered=np.arange(12), seed=1)
    assert agreement(full, half) == 12 / 30
    assert agreement(full, _run(wfc, registered=np.arange(2))) == 0.0  # too few in common to align


def test_choose_keeps_a_backed_run_over_a_larger_unbacked_one():
    wfc = _walk()
    good0, good1 = _run(wfc, registered=np.arange(28), seed=0), _run(_similar(wfc), registered=np.arange(28), seed=1)
    folded = wfc.copy()
    folded[10:, :3, 3] *= -1
    odd = _run(folded, seed=2, err=0.7)  # registers all 30, lower error, but nothing backs it
    report = choose([odd, good0, good1])
    assert report.agreed and report.chosen in (1, 2)
    assert report.as_dict()["runs"][0] == {"seed": 2, "registered": 30, "reproj_error": 0.7}
    assert not needs_another_run([odd, good0, good1], 3) and needs_another_run([odd, good0], 3)
    assert not needs_another_run([odd, good0], 2) and needs_another_run([odd], 3)
    alone = choose([odd, good0])  # no pair agrees: the most keyframes, then the lowest error
    assert not alone.agreed and alone.chosen == 0


def test_the_benchmark_replays_the_engines_flow():
    """core.bench.mapping_runs replays the consensus on all the runs: two, then one at a time until two agree."""
    from core.bench.mapping_runs import replay

    wfc = _walk()
    folded = wfc.copy()
    folded[10:, :3, 3] *= -1
    good, bad = _run(wfc, seed=0), _run(folded, seed=1)
    runs = [good, bad, _run(_similar(folded), seed=2), _run(_similar(wfc), seed=3, err=0.7)]
    assert replay(runs, 5) == (3, 1)  # the third run agrees with the second (a fold repeated): those two back it
    assert replay([good, _run(_similar(wfc), seed=1, err=0.7), bad], 5) == (2, 1)  # the first two agree: stop
    assert replay(runs[:2], 5) == (2, 0)  # nothing agrees and no more runs: the larger / lower-error one
