"""L2W (local-to-world), with CLIP3R's DPT feature head.

Registers keyframes, whose points I2P predicted in their own keyframe's camera frame, into
the scene (world) frame, using retrieved scene frames (their world points) as reference;
the scene frames' points are refined on the way. Each view enters as its image tokens
(the raw encoder tokens I2P computed, never re-encoded) plus a point embedding of its
point map, added to the decoder input of every block so geometry stays in view at every
depth. Views are ordered ``[scene frames (R) | keyframes to register (V - R)]``.

    tokens (B, V, N, C_enc) --token_norm [+ CLIP delta]--> decoder_embed
    points (B, V, H, W, 3)  --point_embed--> added at every block
      scene decoder (reads all keyframes, pooled) / register decoder (reads all scene frames, pooled)
      --dec_norm--> point heads: world points (B, V, H, W, 3), conf (B, V, H, W)
                 --> DPT feature head: CLIP3R features (B, V', d_clip, H, W)

The optional ``semantic`` input is the delta the I2P CLIP injection computed for each frame
(F_fuse - F_ViT), so L2W sees the same object-level semantics the I2P did; without it
(or with an untrained injection, whose delta is zero) L2W behaves as SLAM3R's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import CLIP3RConfig
from .dpt_head import DPTHead
from .i2p import make_point_head
from .layers import LayerNorm
from .multiview_blocks import MultiViewDecoder, two_way_decode, views_to_batch
from .point_embed import PointEmbed
from .rope import RoPE2D

__all__ = ["L2W", "L2WOutput"]


@dataclass
class L2WOutput:
    points: torch.Tensor  # (B, V, H, W, 3) in the scene (world) frame
    conf: torch.Tensor  # (B, V, H, W), > 1
    features: torch.Tensor | None = None  # (B, V', d_clip, H, W) CLIP3R features (V' per `features`)


class L2W(nn.Module):
    """Local-to-world registration network."""

    def __init__(self, cfg: CLIP3RConfig, rope: RoPE2D | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        rope = rope or RoPE2D(cfg.rope_freq)
        self.token_norm = LayerNorm(cfg.enc_dim)
        self.decoder_embed = nn.Linear(cfg.enc_dim, cfg.dec_dim)
        self.point_embed = PointEmbed(cfg.patch_size, cfg.dec_dim)
        args = (cfg.dec_depth, cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio, rope, cfg.pool)
        self.scene_decoder = MultiViewDecoder(*args)
        self.register_decoder = MultiViewDecoder(*args)
        self.dec_norm = LayerNorm(cfg.dec_dim)
        self.scene_head = make_point_head(cfg)
        self.register_head = make_point_head(cfg)
        self.feature_head = DPTHead(cfg.dec_dim, cfg.clip_dim, cfg.dpt_hooks, cfg.dpt_layer_dims,
                                    cfg.dpt_feature_dim)

    def forward(self, tokens: torch.Tensor, points: torch.Tensor, num_scene: int,
                semantic: torch.Tensor | None = None, void: torch.Tensor | None = None,
                grid: tuple[int, int] | None = None, features: str = "all", scene_outputs: bool = True,
                feature_size: tuple[int, int] | None = None) -> L2WOutput:
        """
        tokens: raw encoder tokens ``(B, V, N, C_enc)``; points ``(B, V, H, W, 3)``: world
        points for the first ``num_scene`` views, local (keyframe-frame) points for the rest.
        semantic: optional I2P CLIP delta ``(B, V, N, C_enc)``. void: ``(B, V, N)`` bool,
        patches without valid points. features: which views get CLIP3R features,
        ``"all"``, ``"register"`` (the keyframes only) or ``"none"``.
        scene_outputs=False (streaming inference): only the keyframes' points / confidences are
        returned (``V' = V - R`` views), and the work that only the scene frames' outputs need
        (the scene decoder's last block, the scene head) is skipped; the keyframes' outputs are
        exactly those of the full pass. feature_size: ``(h, w)`` of the CLIP3R feature maps
        (default the input's ``(H, W)``; the engine asks for its pooled size directly).
        """
        B, V, N, _ = tokens.shape
        R = int(num_scene)
        if not 1 <= R < V:
            raise ValueError(f"L2W needs 1 <= num_scene < V, got num_scene={R}, V={V}")
        if features not in ("all", "register", "none"):
            raise ValueError(f"features must be 'all', 'register' or 'none', got {features!r}")
        H, W = points.shape[2:4]
        p = self.cfg.patch_size
        grid = grid or (H // p, W // p)
        x = self.token_norm(tokens)
        if semantic is not None:
            x = x + semantic
        x = self.decoder_embed(x)
        pe = self.point_embed(points.reshape(B * V, H, W, 3),
                              None if void is None else void.reshape(B * V, N)).reshape(B, V, N, -1)
        need_scene = scene_outputs or features == "all"
        ls, lr = two_way_decode(self.scene_decoder, self.register_decoder, x[:, :R], x[:, R:], grid,
                                add_a=pe[:, :R], add_b=pe[:, R:], update_a_last=need_scene)
        ls[-1], lr[-1] = self.dec_norm(ls[-1]), self.dec_norm(lr[-1])
        pr, cr = self.register_head(views_to_batch(lr), grid)
        pts, conf = pr.reshape(B, V - R, H, W, 3), cr.reshape(B, V - R, H, W)
        if scene_outputs:
            ps, cs = self.scene_head(views_to_batch(ls), grid)
            pts = torch.cat((ps.reshape(B, R, H, W, 3), pts), dim=1)
            conf = torch.cat((cs.reshape(B, R, H, W), conf), dim=1)
        feats = None
        if features != "none":
            # the feature head reads the same token layers as the point heads, per view
            if features == "all":
                layers = [torch.cat((a, b), dim=1) for a, b in zip(ls, lr)]
                nv = V
            else:
                layers, nv = lr, V - R
            f = self.feature_head(views_to_batch(layers), grid, tuple(feature_size or (H, W)))
            feats = f.reshape(B, nv, *f.shape[1:])
        return L2WOutput(pts, conf, feats)
