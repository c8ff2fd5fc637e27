"""Mask helpers shared by the segmenters, lifting and their evaluation.

A frame's segmentation is a list of (H,W) bool masks (possibly overlapping, as SAM's) or
a label map (H,W) int32 with -1 = no mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np


class Segmenter(Protocol):
    """Class-agnostic 2D segmenter."""

    name: str

    def segment(self, image: np.ndarray, depth: np.ndarray | None = None,
                intrinsics: np.ndarray | None = None) -> list[np.ndarray]:
        """image (H,W,3) uint8 RGB; depth (H,W) float (NaN unknown) and intrinsics (3,3) of the
        image when known. Returns (H,W) bool masks, largest first."""
        ...


def masks_to_labels(masks: Sequence[np.ndarray], shape: tuple[int, int] | None = None) -> np.ndarray:
    """(K,H,W) bool masks -> (H,W) int32 labels; where masks overlap the smallest one wins."""
    if len(masks) == 0:
        if shape is None:
            raise ValueError("masks_to_labels: no masks and no shape")
        return np.full(shape, -1, np.int32)
    stack = np.asarray(masks, bool)
    area = stack.reshape(len(stack), -1).sum(1)
    order = np.argsort(-area, kind="stable")  # paint large first, small on top
    rev = stack[order][::-1]
    any_ = rev.any(0)
    top = len(order) - 1 - rev.argmax(0)  # last (smallest) covering mask in paint order
    return np.where(any_, order[top], -1).astype(np.int32)


def labels_to_masks(labels: np.ndarray, min_area: int = 0) -> list[np.ndarray]:
    """(H,W) int labels (-1 none) -> bool masks of area >= min_area, largest first."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    keep = counts >= min_area
    ids, counts = ids[keep], counts[keep]
    return [labels == i for i in ids[np.argsort(-counts, kind="stable")]]


def drop_parts(masks: Sequence[np.ndarray], cover: float) -> list[np.ndarray]:
    """Masks largest first, without those lying at least ``cover`` inside larger masks already kept.

    SAM's automatic generator returns every granularity (a sofa, its cushions, a cushion's seam).
    Where masks overlap, the lifting keeps the smallest (``masks_to_labels``), so the parts would
    replace the objects; dropping them keeps whole objects in the frame's partition."""
    kept: list[np.ndarray] = []
    if not len(masks):
        return kept
    union = np.zeros_like(np.asarray(masks[0], bool))
    for m in sorted((np.asarray(m, bool) for m in masks), key=lambda m: -int(m.sum())):
        area = int(m.sum())
        if area and (m & union).sum() < cover * area:
            kept.append(m)
            union |= m
    return kept


def resize_masks(masks: Sequence[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """Nearest-neighbour resize of bool masks to ``size`` (W,H)."""
    out = []
    for m in masks:
        if (m.shape[1], m.shape[0]) == tuple(size):
            out.append(np.asarray(m, bool))
        else:
            out.append(cv2.resize(m.astype(np.uint8), tuple(size), interpolation=cv2.INTER_NEAREST).astype(bool))
    return out


def best_iou(masks: Sequence[np.ndarray], gt: np.ndarray, ignore: Sequence[int] = (0,),
             min_area: int = 1) -> dict[int, float]:
    """For each GT instance id in ``gt`` (H,W) int, the best IoU of any predicted mask."""
    ids, counts = np.unique(gt, return_counts=True)
    keep = ~np.isin(ids, list(ignore)) & (counts >= min_area)
    ids = ids[keep]
    if len(ids) == 0:
        return {}
    G = (gt.reshape(-1)[None, :] == ids[:, None]).astype(np.float32)  # (G,P)
    if len(masks) == 0:
        return {int(i): 0.0 for i in ids}
    P = np.asarray(masks, bool).reshape(len(masks), -1).astype(np.float32)  # (K,P)
    inter = G @ P.T
    union = G.sum(1)[:, None] + P.sum(1)[None, :] - inter
    iou = (inter / np.maximum(union, 1)).max(1)
    return {int(i): float(x) for i, x in zip(ids, iou)}


def mean_best_iou(masks: Sequence[np.ndarray], gt: np.ndarray, ignore: Sequence[int] = (0,),
                  min_area: int = 1) -> float:
    """Mean over GT instances (area >= min_area px) of the best IoU of any predicted mask."""
    b = best_iou(masks, gt, ignore, min_area)
    return float(np.mean(list(b.values()))) if b else float("nan")
