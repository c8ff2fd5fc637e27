"""Object-level descriptors: per mask, the image encoder's embedding of the masked region.

As in the paper's 2D-3D OVS, a mask is described by its own crop, not by the whole image:
a square crop around the mask's bounding box (plus a margin), resized to the encoder's
input size. The crop and its mask both go to the encoder (``ImageEncoder.encode(crops,
masks)``), which may use the mask. Crop kinds (``CROPS``):

- ``"masked"``: 10 % margin, the background outside the mask filled with grey (the object
  alone);
- ``"context"``: 25 % margin, the surroundings kept (the mask says which part is the object:
  a bed's headboard is easier to name with the mattress beside it);
- ``"both"``: the normalised sum of the two descriptors (two encoder passes).

Pooling (``POOLINGS``): ``"crop"`` encodes each crop on its own (one backbone pass per mask);
``"dense"`` runs the backbone once over the whole image and pools its feature maps inside each mask
and its context crop (the paper's mask-averaged patch embeddings; encoders whose ``pools_regions``
is true, through their ``encode_regions``; the others are cropped);
``"hybrid"`` pools the large masks and, for the small ones, whose few feature cells would blur into
their surroundings, either crops them or pools them from a second pass at a larger scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

GREY = 127
CROP_KINDS = {"masked": (0.1, "grey"), "context": (0.25, "keep")}  # kind -> (margin, background)
CROPS = ("masked", "context", "both")
POOLINGS = ("crop", "dense", "hybrid")
DEFAULT_CROP = "context"  # chosen on the validation rooms (docs/experiments/history.md); fusion weights record their own


def crop_kinds(crop: str) -> list[tuple[float, str]]:
    """(margin, background) of each crop whose descriptors ``crop`` (one of ``CROPS``) sums."""
    if crop == "both":
        return [CROP_KINDS["masked"], CROP_KINDS["context"]]
    if crop not in CROP_KINDS:
        raise ValueError(f"unknown crop {crop!r}; use one of {', '.join(CROPS)}")
    return [CROP_KINDS[crop]]


class ImageEncoder(Protocol):
    space_id: str
    dim: int

    def encode(self, crops: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """crops (B,H,W,3) uint8, masks (B,H,W) bool or None -> (B,D) float32, L2-normalised rows."""
        ...


def mask_crops(image: np.ndarray, masks: Sequence[np.ndarray], size: int = 224, margin: float = 0.1,
               background: str = "grey") -> tuple[np.ndarray, np.ndarray]:
    """Square crops around each mask.

    image (H,W,3) uint8; masks K x (H,W) bool (same size as the image);
    margin: fraction of the box side added on each side; background: "grey" or "keep".
    Returns crops (K,size,size,3) uint8 and crop masks (K,size,size) bool.
    """
    K = len(masks)
    crops = np.zeros((K, size, size, 3), np.uint8)
    cmasks = np.zeros((K, size, size), bool)
    for k, (m, (x0, y0, x1, y1)) in enumerate(zip(masks, crop_boxes(masks, margin))):
        side = x1 - x0
        if side <= 0:
            continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        s = size / side
        A = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float64)  # image -> crop
        crops[k] = cv2.warpAffine(image, A, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(GREY, GREY, GREY))
        cmasks[k] = cv2.warpAffine(m.astype(np.uint8), A, (size, size), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    if background == "grey":
        crops[~cmasks] = GREY
    return crops, cmasks


def normalise(d: np.ndarray) -> np.ndarray:
    """Rows of ``d`` (K,D) scaled to unit length (float32)."""
    d = np.asarray(d, np.float32)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def encode_crops(encoder: ImageEncoder, crops: np.ndarray, masks: np.ndarray | None, batch: int = 32) -> np.ndarray:
    """crops (K,S,S,3) uint8, masks (K,S,S) bool or None -> (K,D) L2-normalised, in batches."""
    if len(crops) == 0:
        return np.zeros((0, encoder.dim), np.float32)
    out = [np.asarray(encoder.encode(crops[i:i + batch], None if masks is None else masks[i:i + batch]), np.float32)
           for i in range(0, len(crops), batch)]
    return normalise(np.concatenate(out))


def mask_descriptors(image: np.ndarray, masks: Sequence[np.ndarray], encoder: ImageEncoder, size: int = 224,
                     crop: str = "masked", batch: int = 32) -> np.ndarray:
    """(K,D) float32 L2-normalised descriptors of ``masks`` (K x (H,W) bool) in ``image`` (H,W,3);
    ``crop``: one of ``CROPS``."""
    if len(masks) == 0:
        return np.zeros((0, encoder.dim), np.float32)
    d = sum(encode_crops(encoder, *mask_crops(image, masks, size, margin, bg), batch)
            for margin, bg in crop_kinds(crop))
    return normalise(d)


def crop_boxes(masks: Sequence[np.ndarray], margin: float) -> np.ndarray:
    """(K,4) float64 square context crops ``x0, y0, x1, y1`` (image pixels, may leave the image) of
    masks K x (H,W) bool, as :func:`mask_crops` cuts them; an empty mask gets a zero box."""
    out = np.zeros((len(masks), 4))
    for k, m in enumerate(masks):
        ys = np.flatnonzero(m.any(1))
        xs = np.flatnonzero(m.any(0))
        if len(ys) == 0:
            continue
        half = max(xs[-1] + 1 - xs[0], ys[-1] + 1 - ys[0]) * (1 + 2 * margin) / 2
        cx, cy = (xs[0] + xs[-1] + 1) / 2, (ys[0] + ys[-1] + 1) / 2
        out[k] = cx - half, cy - half, cx + half, cy + half
    return out


def region_weights(masks: Sequence[np.ndarray], boxes: np.ndarray, long_side: int = 256
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Masks K x (H,W) bool and their crop boxes (K,4) -> object weights and crop-box weights, each
    (K,h,w) float32 in [0,1] at ``long_side`` pixels on the long side (area-averaged: the finest
    feature map pooled is coarser)."""
    H, W = masks[0].shape
    s = min(1.0, long_side / max(H, W))
    w, h = max(1, round(W * s)), max(1, round(H * s))
    obj = np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) for m in masks])
    b = np.clip(np.round(boxes * s), 0, [w, h, w, h]).astype(int)
    box = np.zeros((len(masks), h, w), np.float32)
    for k, (x0, y0, x1, y1) in enumerate(b):
        box[k, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = 1.0
    return obj, box


def check_pooling(pooling: str) -> None:
    """ValueError unless ``pooling`` is one of ``POOLINGS``."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")


def pooled_descriptors(image: np.ndarray, masks: Sequence[np.ndarray], encoder, size: int = 224,
                       crop: str = "context", pooling: str = "dense", scale: float = 2.5,
                       min_side: float = 0.0, small_scale: float | None = None, batch: int = 32) -> np.ndarray:
    """(K,D) L2-normalised descriptors of ``masks`` (K x (H,W) bool) in ``image`` (H,W,3) uint8 by
    ``pooling`` (one of ``POOLINGS``): the image encoded once (``encoder.encode_regions``, the backbone
    at ``scale`` crop sizes) and each mask's maps pooled; with "hybrid", masks whose crop side is under
    ``min_side`` of the image's long side are cropped (:func:`mask_descriptors`), or, with
    ``small_scale``, pooled from a second pass of the image at that many crop sizes."""
    check_pooling(pooling)
    if pooling == "crop" or len(masks) == 0 or not getattr(encoder, "pools_regions", False):
        return mask_descriptors(image, masks, encoder, size, crop, batch)
    margin = crop_kinds(crop)[-1][0]
    boxes = crop_boxes(masks, margin)
    pooled = np.ones(len(masks), bool)
    if pooling == "hybrid":
        pooled = (boxes[:, 2] - boxes[:, 0]) >= min_side * max(image.shape[:2])
    out = np.zeros((len(masks), encoder.dim), np.float32)
    idx = np.flatnonzero(pooled)
    if len(idx):
        w, box = region_weights([masks[i] for i in idx], boxes[idx])
        out[idx] = encoder.encode_regions(image, w, box, scale)
    rest = np.flatnonzero(~pooled)
    if len(rest) and small_scale:
        w, box = region_weights([masks[i] for i in rest], boxes[rest])
        out[rest] = encoder.encode_regions(image, w, box, small_scale)
    elif len(rest):
        out[rest] = mask_descriptors(image, [masks[i] for i in rest], encoder, size, crop, batch)
    return normalise(out)
