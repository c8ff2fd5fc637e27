"""The 3D point encoder ("3D-CLIP"): a segment's points -> one vector in the text space.

A PointNet++-lite (single-scale grouping, two set-abstraction levels, kNN grouping instead
of ball queries so it does not depend on the scene's absolute scale) over a fixed number
of points per segment with a validity mask, so segments of any size batch together.

Input per point (9 channels): xyz in scene units (metres), rgb in [0, 1], normal (unit
vector, zeros when unknown). Inside :meth:`PointEncoder.forward` xyz is centred on the
segment's (masked) centroid and divided by its RMS radius; the log of that radius is fed
to the head as one global feature (object size is a strong class cue, e.g. cushion vs sofa).
Output ``(B, dim)``, L2-normalised, distilled into the image encoder's text space with
:func:`distill_loss`.

LayerNorm, never BatchNorm: padded points must not leak into statistics, and train /
eval must compute the same function (the fusion relies on that for its path dropout).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "PointEncoder",
    "PointEncoderConfig",
    "collate_points",
    "distill_loss",
    "estimate_normals",
    "farthest_point_sample",
    "knn",
    "point_features",
    "sample_points",
]

POINT_CHANNELS = 9  # xyz, rgb, normal


@dataclass(frozen=True)
class PointEncoderConfig:
    dim: int = 384  # output: the text space (all-MiniLM-L6-v2)
    n_points: int = 512  # points per segment after sampling / padding (see collate_points)
    centroids: tuple[int, int] = (128, 32)  # set-abstraction centroids per level (FPS)
    neighbours: tuple[int, int] = (24, 16)  # kNN group size per level
    widths: tuple[int, int, int] = (64, 128, 256)  # level 1, level 2, global per-point MLP widths
    hidden: int = 256  # head hidden width
    use_scale: bool = True  # feed log(RMS radius) to the head

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> PointEncoderConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# ---------------------------------------------------------------------------------------- geometry helpers

def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x (B, P, C)``, ``idx (B, *S)`` long -> ``(B, *S, C)``."""
    B = x.shape[0]
    flat = idx.reshape(B, -1)
    out = torch.gather(x, 1, flat[..., None].expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])


@torch.no_grad()
def farthest_point_sample(xyz: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """Farthest point sampling among valid points.

    Args:
        xyz: ``(B, P, 3)`` (centred on the segment's centroid); mask: ``(B, P)`` bool, >= 1 True per row.
    Returns:
        ``(B, n)`` long indices of valid points. The first is the point farthest from the
        centroid (not index 0), so the result does not depend on the order of the points;
        with fewer than ``n`` valid points the remaining picks repeat valid points.
    """
    B = xyz.shape[0]
    idx = torch.empty(B, n, dtype=torch.long, device=xyz.device)
    # invalid points sit at -1 so argmax never picks them, even after all valid ones are taken
    far = torch.where(mask, (xyz * xyz).sum(-1), torch.full_like(xyz[..., 0], -1.0)).argmax(1)
    dist = torch.where(mask, torch.full_like(xyz[..., 0], float("inf")), torch.full_like(xyz[..., 0], -1.0))
    rows = torch.arange(B, device=xyz.device)
    for i in range(n):
        idx[:, i] = far
        d = ((xyz - xyz[rows, far][:, None]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        far = dist.argmax(1)
    return idx


@torch.no_grad()
def knn(query: torch.Tensor, xyz: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` nearest valid points of each query: ``(B, S, 3), (B, P, 3), (B, P) -> (B, S, k)`` long.

    With fewer than ``k`` valid points the missing neighbours repeat the nearest one
    (max pooling over the group is unaffected by repeats)."""
    k = min(k, xyz.shape[1])
    d = torch.cdist(query, xyz).masked_fill(~mask[:, None, :], float("inf"))
    dk, idx = d.topk(k, dim=-1, largest=False)
    return torch.where(torch.isinf(dk), idx[..., :1], idx)


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    """Shared per-point MLP: Linear -> LayerNorm -> GELU for each consecutive width pair."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.GELU()]
    return nn.Sequential(*layers)


class _SetAbstraction(nn.Module):
    """FPS centroids + kNN groups + shared MLP + max over each group.

    ``xyz (B, P, 3), feat (B, P, C), mask (B, P) -> xyz (B, S, 3), feat (B, S, W)``; all
    output centroids are valid points."""

    def __init__(self, cin: int, width: int, n_centroids: int, k: int) -> None:
        super().__init__()
        self.n_centroids, self.k = n_centroids, k
        self.mlp = _mlp([3 + cin, width, width])

    def forward(self, xyz: torch.Tensor, feat: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cidx = farthest_point_sample(xyz, mask, self.n_centroids)
        cxyz = _gather(xyz, cidx)  # (B, S, 3)
        nidx = knn(cxyz, xyz, mask, self.k)  # (B, S, k)
        rel = _gather(xyz, nidx) - cxyz[:, :, None]  # local coordinates: translation-invariant groups
        h = self.mlp(torch.cat([rel, _gather(feat, nidx)], -1))  # (B, S, k, W)
        return cxyz, h.amax(2)


# ---------------------------------------------------------------------------------------- the encoder

class PointEncoder(nn.Module):
    """``forward(points (B, P, 9), mask (B, P) bool | None) -> (B, dim)`` L2-normalised.

    Every row needs at least one valid point (the fusion only calls it for segments that
    have points)."""

    KIND = "point_encoder"

    def __init__(self, cfg: PointEncoderConfig = PointEncoderConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = cfg.widths
        self.sa1 = _SetAbstraction(POINT_CHANNELS, w1, cfg.centroids[0], cfg.neighbours[0])
        self.sa2 = _SetAbstraction(w1, w2, cfg.centroids[1], cfg.neighbours[1])
        self.glob = _mlp([3 + w2, w3])
        n_scale = 1 if cfg.use_scale else 0
        self.head = nn.Sequential(nn.Linear(2 * w3 + n_scale, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.dim))

    @staticmethod
    def normalise(points: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, P, 9), (B, P)`` -> xyz ``(B, P, 3)`` centred / RMS-scaled, features ``(B, P, 9)``,
        log RMS radius ``(B, 1)``. Padded rows are zeroed so they stay finite."""
        m = mask[..., None].to(points.dtype)
        n = m.sum(1).clamp_min(1.0)  # (B, 1)
        xyz = points[..., :3]
        centroid = (xyz * m).sum(1, keepdim=True) / n[:, None]
        rel = (xyz - centroid) * m
        rms = ((rel * rel).sum(-1, keepdim=True).sum(1) / n).sqrt().clamp_min(1e-6)  # (B, 1)
        xyz_n = rel / rms[:, None]
        rgb = (points[..., 3:6] - 0.5) / 0.25  # roughly unit variance
        feats = torch.cat([xyz_n, rgb, points[..., 6:9]], -1) * m
        return xyz_n, feats, rms.log()

    def forward(self, points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if points.dim() != 3 or points.shape[-1] != POINT_CHANNELS:
            raise ValueError(f"PointEncoder: expected (B, P, {POINT_CHANNELS}) points, got {tuple(points.shape)}")
        if mask is None:
            mask = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
        mask = mask.bool()
        if not bool(mask.any(1).all()):
            raise ValueError("PointEncoder: every segment needs at least one valid point")
        xyz, feats, log_scale = self.normalise(points, mask)
        xyz1, f1 = self.sa1(xyz, feats, mask)
        ones = torch.ones(xyz1.shape[:2], dtype=torch.bool, device=xyz1.device)
        xyz2, f2 = self.sa2(xyz1, f1, ones)
        g = self.glob(torch.cat([xyz2, f2], -1))  # (B, S2, w3)
        pooled = [g.amax(1), g.mean(1)]  # max: distinctive parts; mean: overall shape / colour
        if self.cfg.use_scale:
            pooled.append(log_scale)
        return F.normalize(self.head(torch.cat(pooled, -1)), dim=-1)

    def save(self, path: str | Path, extra: dict | None = None, half: bool = False) -> Path:
        """safetensors + config metadata (:mod:`.checkpoint`)."""
        return save_checkpoint(path, self.state_dict(), self.KIND, self.cfg.to_dict(), extra, half)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint) -> PointEncoder:
        net = cls(PointEncoderConfig.from_dict(ck.config))
        net.load_state_dict(ck.state)
        return net.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> PointEncoder:
        """Load weights written by :meth:`save` (eval mode)."""
        return cls.from_checkpoint(load_checkpoint(path, cls.KIND)).to(device)


def distill_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine distillation: mean of ``1 - cos(pred_i, target_i)``.

    Args:
        pred: ``(B, D)`` point-encoder outputs; target: ``(B, D)`` the image encoder's segment
            descriptors (detached here: the teacher is not trained by this loss).
        weight: optional ``(B,)`` per-segment weights (e.g. number of views), 0 = ignore.
    Returns:
        scalar in [0, 2].
    """
    cos = F.cosine_similarity(pred, target.detach(), dim=-1)
    if weight is None:
        return (1.0 - cos).mean()
    w = weight.to(cos.dtype)
    return ((1.0 - cos) * w).sum() / w.sum().clamp_min(1e-12)


# ---------------------------------------------------------------------------------------- input preparation

def point_features(xyz, rgb, normals=None) -> torch.Tensor:
    """One segment's points as ``(N, 9) float32``: xyz ``(N, 3)``; rgb ``(N, 3)`` uint8 (0..255)
    or float in [0, 1]; normals ``(N, 3)`` or None (zeros: unknown)."""
    xyz = torch.as_tensor(np.asarray(xyz) if not torch.is_tensor(xyz) else xyz, dtype=torch.float32)
    rgb_t = torch.as_tensor(np.asarray(rgb)) if not torch.is_tensor(rgb) else rgb
    rgb_t = rgb_t.float() / 255.0 if rgb_t.dtype == torch.uint8 else rgb_t.float()
    nrm = torch.zeros_like(xyz) if normals is None else torch.as_tensor(
        np.asarray(normals) if not torch.is_tensor(normals) else normals, dtype=torch.float32)
    if not (xyz.shape == rgb_t.shape == nrm.shape and xyz.dim() == 2 and xyz.shape[1] == 3):
        raise ValueError(f"point_features: xyz {tuple(xyz.shape)}, rgb {tuple(rgb_t.shape)}, "
                         f"normals {tuple(nrm.shape)} must all be (N, 3)")
    return torch.cat([xyz, rgb_t, nrm], 1)


def sample_points(points: torch.Tensor, n: int, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, C) -> (n, C), mask (n,)``: a random subset without replacement when ``N > n``,
    otherwise all points followed by zero padding (mask False)."""
    N, C = points.shape
    if N > n:
        idx = torch.randperm(N, generator=generator)[:n].to(points.device)
        return points[idx], torch.ones(n, dtype=torch.bool, device=points.device)
    out = points.new_zeros(n, C)
    out[:N] = points
    mask = torch.zeros(n, dtype=torch.bool, device=points.device)
    mask[:N] = True
    return out, mask


def collate_points(segments: Sequence[torch.Tensor], n: int = PointEncoderConfig.n_points,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-size segments ``[(N_i, 9)]`` -> ``(B, n, 9)`` points and ``(B, n)`` bool mask.
    An empty segment gives an all-False row (the fusion then treats its 3D path as absent)."""
    if len(segments) == 0:
        return torch.zeros(0, n, POINT_CHANNELS), torch.zeros(0, n, dtype=torch.bool)
    pts, masks = zip(*(sample_points(torch.as_tensor(s, dtype=torch.float32), n, generator) for s in segments))
    return torch.stack(pts), torch.stack(masks)


@torch.no_grad()
def estimate_normals(xyz: torch.Tensor, mask: torch.Tensor | None = None, k: int = 16) -> torch.Tensor:
    """PCA normals: ``(B, P, 3), (B, P) -> (B, P, 3)`` unit vectors (zeros for padded points).

    The normal is the direction of least variance of each point's ``k`` nearest valid
    neighbours, oriented away from the segment's centroid (reconstructions carry no normals
    and no reliable viewing side, so this is the convention used for training and inference)."""
    if mask is None:
        mask = torch.ones(xyz.shape[:2], dtype=torch.bool, device=xyz.device)
    nb = _gather(xyz, knn(xyz, xyz, mask, k))  # (B, P, k, 3)
    c = nb - nb.mean(2, keepdim=True)
    cov = c.transpose(-1, -2) @ c / nb.shape[2]  # (B, P, 3, 3)
    cov = cov + 1e-9 * torch.eye(3, dtype=xyz.dtype, device=xyz.device)  # degenerate groups stay finite
    normal = torch.linalg.eigh(cov).eigenvectors[..., 0]  # eigenvalues ascend
    m = mask[..., None].to(xyz.dtype)
    centroid = (xyz * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)
    sign = torch.where(((xyz - centroid) * normal).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    return normal * sign * m
