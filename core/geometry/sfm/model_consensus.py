"""Several mapping runs of one SfM database, and the pick among them.

COLMAP's incremental mapping draws its RANSAC samples at random, and now and then a draw folds the
model: part of the camera path is placed mirrored or at a jump, with a normal reprojection error, so
nothing inside one model gives it away. Two runs with different seeds rarely fold the same way, so a
model that another run agrees with (the same camera poses up to a similarity) is trusted; when the
first two disagree, a third run decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose_similarity import pose_similarity


@dataclass
class MappingRun:
    """One mapping run's largest model.

    seed:        the run's RANSAC seed.
    registered:  (M,) int64 keyframe indices with a pose, increasing.
    world_from_camera: (M,4,4) float64 poses of those keyframes (OpenCV axes).
    reproj_error: mean reprojection error in px of the model's points.
    model:       the pycolmap Reconstruction (kept to convert the chosen one).
    """

    seed: int
    registered: np.ndarray
    world_from_camera: np.ndarray
    reproj_error: float
    model: object = None


def align(a: MappingRun, b: MappingRun) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The similarity that maps run ``a``'s frame onto run ``b``'s, from the keyframes both registered.

    The rotation comes from the camera orientations (the chordal mean of ``R_b R_a^T``), since a walk's
    camera centres lie near a line or a plane and leave it loose; scale and translation then come from
    the centres by least squares. Returns (common (C,) keyframe indices, rotation (3,3), centre errors
    (C,) in ``b``'s units, orientation errors (C,) in degrees)."""
    common, ia, ib = np.intersect1d(a.registered, b.registered, return_indices=True)
    wa, wb = a.world_from_camera[ia], b.world_from_camera[ib]
    scale, rot, t = pose_similarity(wa, wb)
    centre_err = np.linalg.norm(wa[:, :3, 3] @ rot.T * scale + t - wb[:, :3, 3], axis=1)
    ra, rb = wa[:, :3, :3], wb[:, :3, :3]
    rel = np.einsum("nji,njk->nik", np.einsum("ij,njk->nik", rot, ra), rb)
    rot_err = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))
    return common, rot, centre_err, rot_err


def agreement(a: MappingRun, b: MappingRun, max_rot_deg: float = 3.0, max_centre_frac: float = 0.05) -> float:
    """Fraction of the keyframes registered in either run whose poses agree in both after ``align``.

    A pose agrees when its orientation differs by under ``max_rot_deg`` and its centre by under
    ``max_centre_frac`` of ``b``'s camera path extent (the RMS distance of its centres from their mean).
    Keyframes only one run registered count as disagreeing, so a run that kept half the video does not
    agree with one that kept all of it.
    """
    union = len(np.union1d(a.registered, b.registered))
    if len(np.intersect1d(a.registered, b.registered)) < 3:
        return 0.0
    common, _, centre_err, rot_err = align(a, b)
    cb = b.world_from_camera[np.searchsorted(b.registered, common), :3, 3]
    extent = float(np.sqrt(((cb - cb.mean(0)) ** 2).sum(1).mean()))
    ok = (rot_err < max_rot_deg) & (centre_err < max_centre_frac * max(extent, 1e-12))
    return float(ok.sum()) / union


@dataclass
class ConsensusReport:
    """What the pick saw: each run's seed, registered count, reprojection error, and the
    agreement of each pair of runs (i, j, fraction)."""

    chosen: int
    runs: list[dict]
    pairs: list[tuple[int, int, float]]
    agreed: bool

    def as_dict(self) -> dict:
        return {"chosen": self.chosen, "runs": self.runs, "agreed": self.agreed,
                "pairs": [[i, j, round(f, 3)] for i, j, f in self.pairs]}


def choose(runs: list[MappingRun], min_agreement: float = 0.8) -> ConsensusReport:
    """The run to keep: among runs that another run agrees with (``agreement`` >= ``min_agreement``),
    the one registering the most keyframes, then the lowest reprojection error; with no agreeing pair,
    the same order over all runs (``agreed`` False)."""
    if not runs:
        raise ValueError("no mapping run to choose from")
    pairs = [(i, j, agreement(runs[i], runs[j])) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    backed = {k for i, j, f in pairs if f >= min_agreement for k in (i, j)}
    pool = sorted(backed) if backed else list(range(len(runs)))
    best = min(pool, key=lambda k: (-len(runs[k].registered), runs[k].reproj_error))
    info = [{"seed": r.seed, "registered": int(len(r.registered)), "reproj_error": round(r.reproj_error, 3)}
            for r in runs]
    return ConsensusReport(best, info, pairs, bool(backed))


def needs_another_run(runs: list[MappingRun], max_runs: int, min_agreement: float = 0.8) -> bool:
    """True while no two runs agree and fewer than ``max_runs`` ran."""
    if len(runs) >= max_runs:
        return False
    if len(runs) < 2:
        return True
    return not any(agreement(runs[i], runs[j]) >= min_agreement
                   for i in range(len(runs)) for j in range(i + 1, len(runs)))
