"""Semantic metrics of the benchmark protocol (DESIGN.md; as OVO / OpenNeRF on Replica).

1. each GT point takes the majority label of its 5 nearest predicted points
   (:func:`transfer_labels`; ties go to the label of the nearest tied neighbour);
2. one confusion matrix over all test scenes (:func:`confusion_matrix`, summed);
3. per class ``IoU = TP / (TP + FP + FN)``, ``Acc = TP / (TP + FN)``;
   ``mIoU`` / ``mAcc`` = means over the classes present in the GT; ``f-mIoU`` = IoU
   weighted by GT frequency; head / common / tail = mIoU over thirds of the present
   classes by GT frequency (:func:`semantic_scores`).

Rows of the confusion matrix are GT classes, columns predictions. GT points with an
ignored label (default ``0`` = unlabeled) are dropped; a prediction outside
``[0, num_classes)`` (e.g. ``-1`` = no label) counts as ``0``, i.e. a miss (FN).
numpy + scipy only.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["transfer_labels", "confusion_matrix", "semantic_scores", "thirds_by_frequency", "score_cells"]


def transfer_labels(gt_points: np.ndarray, pred_points: np.ndarray, pred_labels: np.ndarray, k: int = 5) -> np.ndarray:
    """``(N,) int64``: majority label of the ``k`` nearest predicted points of each GT point."""
    gt_points = np.asarray(gt_points, np.float64)
    pred_points = np.asarray(pred_points, np.float64)
    pred_labels = np.asarray(pred_labels).astype(np.int64)
    if len(pred_points) == 0:
        return np.full(len(gt_points), -1, np.int64)
    if len(pred_points) != len(pred_labels):
        raise ValueError("pred_points and pred_labels must have the same length")
    k = min(k, len(pred_points))
    _, idx = cKDTree(pred_points).query(gt_points, k=k)
    idx = np.asarray(idx).reshape(len(gt_points), k)
    lab = pred_labels[idx]  # (N,k), nearest first
    votes = (lab[:, :, None] == lab[:, None, :]).sum(-1)  # (N,k) count of each neighbour's label
    best = np.argmax(votes, axis=1)  # first max = nearest among the tied labels
    return lab[np.arange(len(lab)), best]


def confusion_matrix(gt_labels: np.ndarray, pred_labels: np.ndarray, num_classes: int,
                     ignore: Sequence[int] = (0,)) -> np.ndarray:
    """``(C, C) int64`` counts, rows = GT, columns = prediction. Sum them over scenes."""
    gt = np.asarray(gt_labels).astype(np.int64).ravel()
    pr = np.asarray(pred_labels).astype(np.int64).ravel()
    if gt.shape != pr.shape:
        raise ValueError("gt_labels and pred_labels must have the same shape")
    keep = (gt >= 0) & (gt < num_classes) & ~np.isin(gt, list(ignore))
    gt, pr = gt[keep], pr[keep]
    pr = np.where((pr >= 0) & (pr < num_classes), pr, 0)
    return np.bincount(gt * num_classes + pr, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def thirds_by_frequency(classes: Sequence[int], counts: np.ndarray) -> Dict[str, list]:
    """Split class ids into head / common / tail thirds by descending ``counts[c]`` (stable)."""
    order = sorted(classes, key=lambda c: (-counts[c], c))
    n = len(order)
    a = (n + 2) // 3
    b = a + (n - a + 1) // 2
    return {"head": order[:a], "common": order[a:b], "tail": order[b:]}


def semantic_scores(conf: np.ndarray, class_names: Optional[Sequence[str]] = None,
                    frequency_order: Optional[Sequence[str]] = None) -> Dict:
    """Scores from a confusion matrix (rows GT, columns prediction).

    Args:
        conf: ``(C, C)`` counts (already summed over scenes).
        class_names: names of the ``C`` classes (default ``"0".."C-1"``).
        frequency_order: optional most-to-least frequent class names defining head /
            common / tail instead of the GT frequency in ``conf`` (present classes only).

    Returns:
        dict with ``miou``, ``macc``, ``fmiou``, ``head_miou``, ``common_miou``,
        ``tail_miou`` (fractions in [0, 1], NaN when a group is empty), ``per_class``
        ``{name: {"iou", "acc", "gt_count", "confused_with", "confused_share"}}`` for present
        classes (``confused_with``: the wrong prediction taking most of the class's GT points,
        ``confused_share`` its fraction of them; None / 0 when every point is right),
        ``groups`` (names) and ``num_present``.
    """
    conf = np.asarray(conf, np.float64)
    C = conf.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(C)]
    tp = np.diag(conf)
    gt_n = conf.sum(1)
    pred_n = conf.sum(0)
    fp = pred_n - tp
    fn = gt_n - tp
    present = [c for c in range(C) if gt_n[c] > 0]
    iou = np.full(C, np.nan)
    acc = np.full(C, np.nan)
    for c in present:
        iou[c] = tp[c] / (tp[c] + fp[c] + fn[c])
        acc[c] = tp[c] / (tp[c] + fn[c])
    nan = float("nan")
    if present:
        miou = float(np.mean(iou[present]))
        macc = float(np.mean(acc[present]))
        w = gt_n[present] / gt_n[present].sum()
        fmiou = float(np.sum(w * iou[present]))
    else:
        miou = macc = fmiou = nan
    if frequency_order is not None:
        rank = {n: i for i, n in enumerate(frequency_order)}
        pseudo = np.array([-rank.get(names[c], len(rank)) for c in range(C)], float)
        groups = thirds_by_frequency(present, pseudo)
    else:
        groups = thirds_by_frequency(present, gt_n)
    wrong = conf - np.diag(tp)  # off-diagonal: GT c predicted as another class
    top_wrong = wrong.argmax(1)
    per_class = {}
    for c in present:
        w = wrong[c, top_wrong[c]]
        per_class[names[c]] = {"iou": float(iou[c]), "acc": float(acc[c]), "gt_count": int(gt_n[c]),
                               "confused_with": names[top_wrong[c]] if w > 0 else None,
                               "confused_share": float(w / gt_n[c])}
    out = {"miou": miou, "macc": macc, "fmiou": fmiou, "num_present": len(present),
           "per_class": per_class,
           "groups": {g: [names[c] for c in cs] for g, cs in groups.items()}}
    for g, cs in groups.items():
        out[f"{g}_miou"] = float(np.mean(iou[cs])) if cs else nan
    return out


def score_cells(sem: Dict, classes: Sequence[str]) -> list:
    """Markdown cells of ``semantic_scores`` output: mIoU, mAcc, f-mIoU, head / common / tail (percent), then
    the IoU of each of ``classes`` ("-" when absent)."""
    per = sem["per_class"]
    cells = [f"{100 * sem[k]:.2f}" for k in ("miou", "macc", "fmiou", "head_miou", "common_miou", "tail_miou")]
    return cells + [f"{100 * per[c]['iou']:.1f}" if c in per else "-" for c in classes]
