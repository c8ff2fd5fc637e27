"""The 2D-3D OVS fused segment descriptor (Ov3R, "2D-3D OVS").

Per segment (batched over B segments):

    F_cat   = Linear([Linear(F_DINO), F_CLIP3R])        fused query (DINO: boundaries)
    D_scene = CrossAttn(F_cat, scene-level CLIP3R tokens)
    D_inst  = CrossAttn(F_cat, instance-level CLIP3R tokens)
    D_mask  = MLP([PointEncoder(points), masked CLIP3R])  the 3D branch (geometry)
    w       = softmax over paths, per channel, of a shallow MLP of (D_scene, D_inst, D_mask)
    D       = normalize(sum_k w_k (Hadamard) D_k)       in the text space, compared by cosine

Here F_CLIP3R in F_cat is the masked (instance) CLIP3R feature, mean-pooled over its
tokens; "masked CLIP3R features" in the 3D branch are that same pooled vector.

Design choices (documented because they differ in detail from the paper's text):
- **Weights: softmax across the three paths, per channel.** The weights of a channel sum
  to 1 (a convex combination, as in OVO's weighted average), and a missing path is removed
  by giving it logit -inf, so the remaining weights renormalise exactly. Sigmoid weights
  would need a separate rule for what a missing path's weight means.
- **Path dropout = absence.** In training, DINO is dropped per segment with probability
  ``p_drop_dino`` (its projected feature replaced by a learned null vector) and the 3D
  path with ``p_drop_points`` (its weight logit set to -inf). An absent input at inference
  goes through exactly the same code, so "no DINO checkpoint" or "segment without points"
  is a state the model was trained in, not a broken input. Nothing else is random (no
  dropout layers, no BatchNorm), so train and eval compute the same function apart from
  the path drops.
- **Near-identity start.** Each path is ``normalize(skip(c) + gamma_k * head_k)`` with
  ``skip`` the identity when the CLIP3R width equals the text width and ``gamma`` small
  (LayerScale), so an untrained fusion returns (almost) the normalised masked CLIP3R
  feature: the "plain averaged descriptor" baseline, which training refines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CrossAttentionBlock, as_tokens, masked_mean
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .point_encoder import PointEncoder, PointEncoderConfig

__all__ = ["PATHS", "FusionConfig", "FusionOutput", "OvsFusion", "sample_path_drop"]

PATHS = ("scene", "inst", "mask")


@dataclass(frozen=True)
class FusionConfig:
    dim: int = 384  # output: the text space (all-MiniLM-L6-v2)
    clip_dim: int = 384  # CLIP3R feature width
    dino_dim: int = 384  # DINOv2 ViT-S/14 width
    dino_proj: int = 128  # width of Linear(F_DINO) before the concatenation with F_CLIP3R
    heads: int = 6
    mlp_ratio: float = 2.0
    mask_hidden: int = 384  # hidden width of the 3D branch's MLP
    weight_hidden: int = 256  # hidden width of the weight model
    layer_scale: float = 0.1  # initial gamma of each path's learned part
    p_drop_dino: float = 0.25  # training-time path dropout, per segment
    p_drop_points: float = 0.25
    point: PointEncoderConfig = field(default_factory=PointEncoderConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["point"] = self.point.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FusionConfig:
        d = dict(d)
        d["point"] = PointEncoderConfig.from_dict(d.get("point", {}))
        return cls(**d)


@dataclass
class FusionOutput:
    """descriptor ``(B, dim)`` L2-normalised; paths ``(B, 3, dim)`` normalised D_scene, D_inst,
    D_mask (D_mask rows are zero where the 3D path was unused); weights ``(B, 3, dim)`` (sum 1
    over paths, 0 for an unused path); used ``(B, 3)`` bool; dino_used ``(B,)`` bool."""

    descriptor: torch.Tensor
    paths: torch.Tensor
    weights: torch.Tensor
    used: torch.Tensor
    dino_used: torch.Tensor


def sample_path_drop(batch: int, p: float, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``(batch,)`` bool, True = drop the path for that segment (probability ``p``).
    Drawn on the CPU so a CPU ``generator`` (or the global seed) gives the same drops on any device."""
    if p <= 0.0:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    return (torch.rand(batch, generator=generator) < p).to(device)


class OvsFusion(nn.Module):
    """The fused descriptor. See :meth:`forward_parts` for inputs; :meth:`forward` returns
    only the descriptor ``(B, dim)``."""

    KIND = "fusion"

    def __init__(self, cfg: FusionConfig = FusionConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        D, C = cfg.dim, cfg.clip_dim
        # DINO -> Linear(F_DINO); a learned null vector stands in when DINO is dropped / absent
        self.dino_proj = nn.Sequential(nn.LayerNorm(cfg.dino_dim), nn.Linear(cfg.dino_dim, cfg.dino_proj))
        self.dino_null = nn.Parameter(torch.zeros(cfg.dino_proj))
        self.norm_clip = nn.LayerNorm(C)
        self.cat = nn.Linear(cfg.dino_proj + C, D)  # F_cat
        self.attn_scene = CrossAttentionBlock(D, C, cfg.heads, cfg.mlp_ratio)
        self.attn_inst = CrossAttentionBlock(D, C, cfg.heads, cfg.mlp_ratio)
        self.head_scene = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, D))
        self.head_inst = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, D))
        # 3D branch: point-encoder output with the masked CLIP3R feature
        self.point_encoder = PointEncoder(cfg.point)
        self.norm_point = nn.LayerNorm(cfg.point.dim)
        self.norm_mask_clip = nn.LayerNorm(C)
        self.head_mask = nn.Sequential(nn.Linear(cfg.point.dim + C, cfg.mask_hidden), nn.GELU(),
                                       nn.Linear(cfg.mask_hidden, D))
        self.skip = nn.Linear(C, D)
        if C == D:  # start from the masked CLIP3R feature itself
            with torch.no_grad():
                self.skip.weight.copy_(torch.eye(D))
                self.skip.bias.zero_()
        self.gamma = nn.Parameter(torch.full((3, D), float(cfg.layer_scale)))
        # weight model: all three path descriptors + which paths are present -> per-channel logits
        self.weight_net = nn.Sequential(nn.Linear(3 * D + 3, cfg.weight_hidden), nn.GELU(),
                                        nn.Linear(cfg.weight_hidden, 3 * D))
        with torch.no_grad():  # near-uniform weights at the start, but gradients still reach every layer
            self.weight_net[-1].weight.mul_(0.01)
            self.weight_net[-1].bias.zero_()

    # ------------------------------------------------------------------------------------ forward

    def forward_parts(self, clip_inst: torch.Tensor, clip_scene: torch.Tensor, dino_inst: torch.Tensor | None = None,
                      points: torch.Tensor | None = None, point_mask: torch.Tensor | None = None, *,
                      inst_mask: torch.Tensor | None = None, scene_mask: torch.Tensor | None = None,
                      dino_present: torch.Tensor | None = None,
                      generator: torch.Generator | None = None,
                      point_feats: torch.Tensor | None = None,
                      point_present: torch.Tensor | None = None) -> FusionOutput:
        """Fuse B segments.

        Args:
            clip_inst: instance-level CLIP3R feature, ``(B, C)`` pooled under the segment's
                mask, or ``(B, Ti, C)`` tokens with ``inst_mask (B, Ti)`` (True = valid).
            clip_scene: scene-level CLIP3R feature of the segment's frame, ``(B, C)`` pooled or
                ``(B, Ts, C)`` tokens (e.g. :func:`.pooling.grid_tokens`) with ``scene_mask``.
            dino_inst: ``(B, C_dino)`` DINO feature pooled under the mask, or None (no DINO:
                exactly the dropped-DINO path). ``dino_present (B,)`` bool marks rows that have
                one (others may hold anything finite or not; they are never read).
            points: ``(B, P, 9)`` the segment's points (xyz, rgb in [0, 1], normal) with
                ``point_mask (B, P)`` bool; None or an all-False row = no 3D path for it.
            generator: RNG for the training-time path dropout (default: torch's global RNG).
            point_feats: instead of ``points``, ``(B, point.dim)`` outputs of a (frozen) point
                encoder computed beforehand; ``point_present (B,)`` bool marks the rows that have
                one (default all). Dropout and weights treat them exactly like ``points``.
        Returns:
            :class:`FusionOutput`.
        """
        inst_tok, inst_mask = as_tokens(clip_inst, inst_mask)
        scene_tok, scene_mask = as_tokens(clip_scene, scene_mask)
        B, dev = inst_tok.shape[0], inst_tok.device
        if scene_tok.shape[0] != B:
            raise ValueError(f"clip_scene has {scene_tok.shape[0]} rows for {B} segments")
        c = masked_mean(inst_tok, inst_mask)  # (B, C) the masked CLIP3R feature

        has_dino = torch.zeros(B, dtype=torch.bool, device=dev)
        if dino_inst is not None:
            has_dino = torch.ones_like(has_dino) if dino_present is None else dino_present.to(dev).bool().clone()
        has_pts = torch.zeros(B, dtype=torch.bool, device=dev)
        if points is not None and point_feats is not None:
            raise ValueError("give points or point_feats, not both")
        if point_feats is not None:
            if point_feats.shape != (B, self.cfg.point.dim):
                raise ValueError(f"point_feats {tuple(point_feats.shape)} != ({B}, {self.cfg.point.dim})")
            has_pts = torch.ones_like(has_pts) if point_present is None else point_present.to(dev).bool().clone()
        if points is not None:
            if points.shape[0] != B:
                raise ValueError(f"points has {points.shape[0]} rows for {B} segments")
            if point_mask is None:
                point_mask = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
            has_pts = point_mask.to(dev).bool().any(1)
        if self.training:
            has_dino = has_dino & ~sample_path_drop(B, self.cfg.p_drop_dino, generator, dev)
            has_pts = has_pts & ~sample_path_drop(B, self.cfg.p_drop_points, generator, dev)

        # F_cat = Linear([Linear(F_DINO) or null, F_CLIP3R]); only present rows are read, so a
        # NaN in an absent row can never leak into the output or the gradients
        d = self.dino_null.expand(B, -1)
        if bool(has_dino.any()):
            idx = has_dino.nonzero().squeeze(1)
            d = d.index_put((idx,), self.dino_proj(dino_inst[idx].to(c.dtype)))
        f_cat = self.cat(torch.cat([d, self.norm_clip(c)], -1))  # (B, D)

        h_scene = self.head_scene(self.attn_scene(f_cat, scene_tok, scene_mask))
        h_inst = self.head_inst(self.attn_inst(f_cat, inst_tok, inst_mask))

        g = c.new_zeros(B, self.cfg.point.dim)
        if point_feats is not None:
            g = torch.where(has_pts[:, None], point_feats.to(c.dtype), g)
        elif bool(has_pts.any()):
            idx = has_pts.nonzero().squeeze(1)
            g = g.index_put((idx,), self.point_encoder(points[idx].to(c.dtype), point_mask[idx]))
        h_mask = self.head_mask(torch.cat([self.norm_point(g), self.norm_mask_clip(c)], -1))

        base = self.skip(c)
        paths = torch.stack([base + self.gamma[0] * h_scene, base + self.gamma[1] * h_inst,
                             base + self.gamma[2] * h_mask], 1)
        used = torch.stack([torch.ones_like(has_pts), torch.ones_like(has_pts), has_pts], 1)  # (B, 3)
        paths = F.normalize(paths, dim=-1) * used[..., None]  # an unused D_mask is exactly zero

        logits = self.weight_net(torch.cat([paths.flatten(1), used.to(paths.dtype)], -1)).view(B, 3, -1)
        w = logits.masked_fill(~used[..., None], float("-inf")).softmax(1)  # per channel, over paths
        desc = F.normalize((w * paths).sum(1), dim=-1)
        return FusionOutput(desc, paths, w, used, has_dino)

    def forward(self, clip_inst: torch.Tensor, clip_scene: torch.Tensor, dino_inst: torch.Tensor | None = None,
                points: torch.Tensor | None = None, point_mask: torch.Tensor | None = None,
                **kwargs) -> torch.Tensor:
        """``-> (B, dim)`` L2-normalised descriptors (see :meth:`forward_parts`)."""
        return self.forward_parts(clip_inst, clip_scene, dino_inst, points, point_mask, **kwargs).descriptor

    # ------------------------------------------------------------------------------------ weights

    def save(self, path: str | Path, extra: dict | None = None, half: bool = False) -> Path:
        """safetensors + config metadata (:mod:`.checkpoint`)."""
        return save_checkpoint(path, self.state_dict(), self.KIND, self.cfg.to_dict(), extra, half)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint) -> OvsFusion:
        net = cls(FusionConfig.from_dict(ck.config))
        net.load_state_dict(ck.state)
        return net.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> OvsFusion:
        """Load weights written by :meth:`save` (eval mode)."""
        return cls.from_checkpoint(load_checkpoint(path, cls.KIND)).to(device)
