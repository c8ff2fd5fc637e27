"""Geometry metrics for reconstruction benchmarks (numpy + scipy only, no bpy).

Follows the protocol in DESIGN.md ("Benchmark protocol"), as in SLAM3R's evaluation:

1. align the prediction to the ground truth with a Sim(3) (Umeyama on camera centres or
   on corresponding points), optionally refined with ICP (:func:`icp_refine`); clouds start from
   the similarity of the camera poses, orientations included (:func:`align_cloud`), since a walk's
   centres alone leave the rotation about their line loose;
2. Accuracy = mean nearest-neighbour distance predicted -> GT, Completeness = mean
   nearest-neighbour distance GT -> predicted (:func:`accuracy_completeness`);
3. F-score at distance thresholds (:func:`fscore`);
4. ATE RMSE of camera centres after Sim(3) alignment (:func:`ate_rmse`).

All distances are in the units of the inputs (metres for the project's data).
A Sim(3) is always a tuple ``(s, R, t)`` with ``s`` a float, ``R (3,3)`` a rotation and
``t (3,)``, acting as ``x -> s * R @ x + t``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "Sim3",
    "umeyama_sim3",
    "apply_sim3",
    "compose_sim3",
    "sim3_to_matrix",
    "ate_rmse",
    "nn_distances",
    "accuracy_completeness",
    "fscore",
    "icp_refine",
    "align_cloud",
]

Sim3 = Tuple[float, np.ndarray, np.ndarray]


def _as_points(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N,3), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    return a


def umeyama_sim3(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Sim3:
    """Least-squares similarity transform with ``dst ~= s * R @ src + t`` (Umeyama 1991).

    Args:
        src: ``(N,3)`` source points.
        dst: ``(N,3)`` corresponding destination points (same order as ``src``).
        with_scale: estimate the scale ``s``; if False, ``s = 1`` (rigid SE(3) fit).

    Returns:
        ``(s, R, t)``: ``s`` float, ``R (3,3)`` proper rotation (det = +1), ``t (3,)``.

    Raises:
        ValueError: shapes differ, fewer than 3 points, or ``src`` is degenerate
            (all points identical).
    """
    src = _as_points(src, "src")
    dst = _as_points(dst, "dst")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst shapes differ: {src.shape} vs {dst.shape}")
    n = src.shape[0]
    if n < 3:
        raise ValueError(f"need at least 3 correspondences, got {n}")
    mu_s = src.mean(axis=0)
    mu_d = dst.mean(axis=0)
    xs = src - mu_s
    xd = dst - mu_d
    var_s = float((xs * xs).sum() / n)
    if var_s <= 1e-300:
        raise ValueError("src points are degenerate (zero variance)")
    cov = xd.T @ xs / n  # (3,3)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    s = float(np.trace(np.diag(D) @ S) / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def apply_sim3(points: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Apply ``x -> s * R @ x + t`` to ``points (N,3)``; returns ``(N,3)`` float64."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N,3), got {p.shape}")
    return s * p @ np.asarray(R, dtype=np.float64).T + np.asarray(t, dtype=np.float64)


def compose_sim3(a: Sim3, b: Sim3) -> Sim3:
    """Return ``a o b`` (apply ``b`` first, then ``a``)."""
    sa, Ra, ta = a
    sb, Rb, tb = b
    return sa * sb, Ra @ Rb, sa * Ra @ tb + ta


def sim3_to_matrix(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(4,4)`` homogeneous matrix of the similarity ``x -> s R x + t``."""
    M = np.eye(4)
    M[:3, :3] = s * np.asarray(R)
    M[:3, 3] = np.asarray(t)
    return M


def ate_rmse(
    pred_centers: np.ndarray, gt_centers: np.ndarray, with_scale: bool = True
) -> Tuple[float, Sim3]:
    """Absolute trajectory error of camera centres after Sim(3) alignment.

    Args:
        pred_centers: ``(F,3)`` predicted camera centres.
        gt_centers: ``(F,3)`` ground-truth centres, same frames in the same order.
        with_scale: align with a similarity (True, for monocular methods) or rigidly.

    Returns:
        ``(rmse, (s, R, t))`` where the transform maps predicted to GT coordinates and
        ``rmse = sqrt(mean ||s R p + t - g||^2)``.
    """
    sim = umeyama_sim3(pred_centers, gt_centers, with_scale=with_scale)
    aligned = apply_sim3(pred_centers, *sim)
    err = aligned - np.asarray(gt_centers, dtype=np.float64)
    rmse = float(np.sqrt(np.mean(np.sum(err * err, axis=1))))
    return rmse, sim


def nn_distances(query: np.ndarray, ref: np.ndarray, tree: Optional[cKDTree] = None) -> np.ndarray:
    """Distance from each ``query (N,3)`` point to its nearest ``ref (M,3)`` point -> ``(N,)``."""
    query = _as_points(query, "query")
    if tree is None:
        ref = _as_points(ref, "ref")
        if ref.shape[0] == 0:
            raise ValueError("ref is empty")
        tree = cKDTree(ref)
    if query.shape[0] == 0:
        return np.zeros((0,), dtype=np.float64)
    d, _ = tree.query(query, k=1, workers=-1)
    return np.asarray(d, dtype=np.float64)


def accuracy_completeness(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """Accuracy and completeness of an (already aligned) predicted point cloud.

    Args:
        pred: ``(N,3)`` predicted points.
        gt: ``(M,3)`` ground-truth points (dense surface samples).

    Returns:
        dict with ``acc`` (mean NN distance pred -> gt), ``comp`` (mean NN distance
        gt -> pred), ``acc_median``, ``comp_median``. Lower is better.
    """
    pred = _as_points(pred, "pred")
    gt = _as_points(gt, "gt")
    if pred.shape[0] == 0 or gt.shape[0] == 0:
        raise ValueError("pred and gt must be non-empty")
    d_pg = nn_distances(pred, gt)
    d_gp = nn_distances(gt, pred)
    return {
        "acc": float(d_pg.mean()),
        "comp": float(d_gp.mean()),
        "acc_median": float(np.median(d_pg)),
        "comp_median": float(np.median(d_gp)),
    }


def fscore(
    pred: np.ndarray, gt: np.ndarray, thresholds: Sequence[float] = (0.01, 0.02, 0.05)
) -> Dict[float, Dict[str, float]]:
    """Precision / recall / F-score at distance thresholds (Knapitsch et al., Tanks & Temples).

    precision(d) = fraction of ``pred (N,3)`` points within ``d`` of ``gt (M,3)``;
    recall(d) = fraction of gt points within ``d`` of pred; F = 2PR / (P + R) (0 if both 0).
    A distance exactly equal to the threshold counts as inside (``<=``).

    Returns:
        ``{threshold: {"precision": p, "recall": r, "fscore": f}}`` for each threshold.
    """
    pred = _as_points(pred, "pred")
    gt = _as_points(gt, "gt")
    if pred.shape[0] == 0 or gt.shape[0] == 0:
        raise ValueError("pred and gt must be non-empty")
    d_pg = nn_distances(pred, gt)
    d_gp = nn_distances(gt, pred)
    out: Dict[float, Dict[str, float]] = {}
    for th in thresholds:
        p = float(np.mean(d_pg <= th))
        r = float(np.mean(d_gp <= th))
        f = 0.0 if p + r == 0 else 2.0 * p * r / (p + r)
        out[float(th)] = {"precision": p, "recall": r, "fscore": f}
    return out


def icp_refine(
    pred: np.ndarray,
    gt: np.ndarray,
    init: Optional[Sim3] = None,
    iters: int = 20,
    with_scale: bool = True,
    max_correspondence_distance: Optional[float] = None,
    max_points: int = 50_000,
    tol: float = 1e-7,
    seed: int = 0,
) -> Sim3:
    """Point-to-point ICP refining a Sim(3) that maps ``pred`` onto ``gt``.

    Each iteration transforms (a random subset of at most ``max_points``) ``pred``
    points with the current estimate, pairs each with its nearest ``gt`` point,
    drops pairs farther than ``max_correspondence_distance`` (if given), and re-solves
    the Sim(3) with :func:`umeyama_sim3` from the original points to their matches.

    Args:
        pred: ``(N,3)`` predicted points (in the prediction's frame).
        gt: ``(M,3)`` ground-truth points.
        init: starting ``(s, R, t)``; identity if None.
        iters: maximum number of iterations.
        with_scale: also refine the scale (Sim(3)); False keeps ``init``'s scale and
            refines only the rigid part.
        max_correspondence_distance: reject pairs farther than this (in GT units).
        max_points: subsample ``pred`` to at most this many points (speed).
        tol: stop when the mean matched distance changes by less than this.
        seed: RNG seed for the subsampling.

    Returns:
        refined ``(s, R, t)`` mapping pred to gt coordinates.
    """
    pred = _as_points(pred, "pred")
    gt = _as_points(gt, "gt")
    if init is None:
        s, R, t = 1.0, np.eye(3), np.zeros(3)
    else:
        s, R, t = float(init[0]), np.asarray(init[1], dtype=np.float64), np.asarray(init[2], dtype=np.float64)
    if pred.shape[0] > max_points:
        idx = np.random.default_rng(seed).choice(pred.shape[0], max_points, replace=False)
        pred = pred[idx]
    tree = cKDTree(gt)
    prev_err = np.inf
    for _ in range(int(iters)):
        moved = apply_sim3(pred, s, R, t)
        d, j = tree.query(moved, k=1, workers=-1)
        keep = np.ones_like(d, dtype=bool)
        if max_correspondence_distance is not None:
            keep = d <= max_correspondence_distance
        if keep.sum() < 3:
            break
        src = pred[keep]
        dst = gt[j[keep]]
        if with_scale:
            s, R, t = umeyama_sim3(src, dst, with_scale=True)
        else:
            # Rigid refinement at fixed scale: fit SE(3) to (s * src) -> dst.
            _, R, t = umeyama_sim3(s * src, dst, with_scale=False)
        err = float(d[keep].mean())
        if abs(prev_err - err) < tol:
            break
        prev_err = err
    return float(s), R, t


def align_cloud(
    pred_points: np.ndarray,
    gt_points: np.ndarray,
    pred_world_from_camera: np.ndarray,
    gt_world_from_camera: np.ndarray,
    max_correspondence_distance: float = 0.1,
) -> Sim3:
    """The Sim(3) mapping a predicted cloud onto the ground truth: the similarity of the keyframe poses
    (``core.geometry.pose_similarity``: rotation from the orientations, scale and shift from the centres),
    refined by ICP within ``max_correspondence_distance``.

    pred_points (N,3), gt_points (M,3); pred_world_from_camera / gt_world_from_camera: (K,4,4) of the
    same keyframes. A fit to the centres alone would leave the rotation about a straight walk free, and
    the room swings by more than ICP's window (decimetres on a test room whose path fits within 2 cm).
    """
    from ..geometry.pose_similarity import pose_similarity

    init = pose_similarity(pred_world_from_camera, gt_world_from_camera)
    return icp_refine(pred_points, gt_points, init=init, max_correspondence_distance=max_correspondence_distance)
