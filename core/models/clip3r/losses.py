"""CLIP3R training losses.

Point maps (I2P and L2W), confidence-aware regression as in DUSt3R / SLAM3R:

    L_conf = mean over valid pixels i of  C_i * ||X_i - X*_i|| - alpha * log C_i

where ``||.||`` is the Euclidean distance of the (optionally scale-normalised) points. The
network can lower a hard pixel's weight by lowering C_i, but pays ``alpha log C_i`` for it.
For I2P the prediction's scale is arbitrary, so prediction and ground truth are each
divided by the mean distance of their valid points to the reference camera (points are
expressed in the reference frame, so that is their mean norm), jointly over the views of a
sample. L2W predicts in the scene frame, whose scale the inputs fix: no normalisation.

Semantics (L2W's DPT head): ``L_oCLIP = mean over valid pixels of ||F_CLIP3R - F_oCLIP||_1``
(L1 norm over the feature channels).
"""

from __future__ import annotations

import torch

__all__ = ["clip_feature_loss", "confidence_l1_loss", "normalize_pointmaps"]


def _valid(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device) if valid is None else valid.to(torch.bool)


def normalize_pointmaps(points: torch.Tensor, valid: torch.Tensor | None = None, eps: float = 1e-8
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide each sample's points by the mean norm of its valid points.

    points: ``(B, ..., 3)`` (e.g. ``(B, V, H, W, 3)``) in the reference camera frame;
    valid: ``(B, ...)`` bool. Returns the normalised points and the scale ``(B,)``.
    """
    valid = _valid(points, valid)
    B = points.shape[0]
    d = points.norm(dim=-1) * valid
    count = valid.reshape(B, -1).sum(dim=1).clamp(min=1)
    scale = (d.reshape(B, -1).sum(dim=1) / count).clamp(min=eps)
    return points / scale.reshape(B, *([1] * (points.dim() - 1))), scale


def confidence_l1_loss(pred: torch.Tensor, conf: torch.Tensor, gt: torch.Tensor,
                       valid: torch.Tensor | None = None, alpha: float = 0.2, normalize: bool = True,
                       reduction: str = "mean") -> torch.Tensor:
    """Confidence-aware point-map loss.

    pred, gt: ``(B, ..., 3)``; conf ``(B, ...)`` (> 0, from the head: ``1 + exp``);
    valid ``(B, ...)`` bool (pixels with ground truth). alpha: weight of ``-log C``
    (SLAM3R trains with 0.2). normalize: scale-normalise pred and gt separately (I2P);
    False for L2W. reduction: ``"mean"`` over valid pixels (default) or ``"sum"``.
    A batch without valid pixels gives 0 (still differentiable).
    """
    valid = _valid(gt, valid)
    if normalize:
        pred, _ = normalize_pointmaps(pred, valid)
        gt, _ = normalize_pointmaps(gt, valid)
    dist = (pred - gt).norm(dim=-1)
    per_pixel = (conf * dist - alpha * torch.log(conf))[valid]
    if reduction == "sum":
        return per_pixel.sum()
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return per_pixel.sum() / valid.sum().clamp(min=1)


def clip_feature_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """``L_oCLIP``: pred, target ``(B, [V,] d, H, W)`` channel-first feature maps;
    valid ``(B, [V,] H, W)`` bool (pixels covered by a segment). Mean over valid pixels of
    the per-pixel L1 distance (summed over channels)."""
    if pred.shape != target.shape:
        raise ValueError(f"feature shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    l1 = (pred - target).abs().sum(dim=-3)  # (B, [V,] H, W)
    if valid is None:
        return l1.mean()
    valid = valid.to(torch.bool)
    return l1[valid].sum() / valid.sum().clamp(min=1)
