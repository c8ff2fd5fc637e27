"""I2P (image-to-points), with CLIP3R's CLIP injection.

A window of ``V`` frames (L = 5 to initialise a scene, 11 later) with one keyframe (by
default the middle frame) goes in; per-pixel 3D points of *every* frame, expressed in the
keyframe's camera frame, and their confidences come out.

    images (B, V, 3, H, W) --encoder (once per frame, batched)--> raw tokens (B, V, N, C_enc)
      --token_norm [+ CLIP injection with F_oCLIP (B, V, N, d_clip)]--> fused tokens
      --decoder_embed--> keyframe decoder (reads all support views, pooled)
                         support decoder  (each support view reads the keyframe)
      --dec_norm, point heads--> points (B, V, H, W, 3), conf (B, V, H, W)

The three stages are separate methods so a streaming engine encodes each frame once and
reuses its tokens for every overlapping window, for L2W and for retrieval.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .clip_injection import CLIPInjection
from .config import CLIP3RConfig
from .layers import LayerNorm
from .multiview_blocks import MultiViewDecoder, two_way_decode, views_to_batch
from .point_head import DPTPointHead, LinearPointHead
from .retrieval import RetrievalScorer
from .rope import RoPE2D
from .vit_encoder import ViTEncoder

__all__ = ["I2P", "I2POutput", "make_point_head"]


@dataclass
class I2POutput:
    points: torch.Tensor  # (B, V, H, W, 3) in the keyframe's camera frame
    conf: torch.Tensor  # (B, V, H, W), > 1
    keyframe: int  # index of the keyframe in the window
    tokens: torch.Tensor | None = None  # (B, V, N, C_enc) raw encoder tokens, reusable by L2W
    delta: torch.Tensor | None = None  # (B, V, N, C_enc) what the CLIP injection added (None: no injection)


def make_point_head(cfg: CLIP3RConfig) -> nn.Module:
    if cfg.head_type == "linear":
        return LinearPointHead(cfg.dec_dim, cfg.patch_size)
    return DPTPointHead(cfg.dec_dim, cfg.patch_size, cfg.dpt_hooks, cfg.dpt_layer_dims, cfg.dpt_feature_dim)


class I2P(nn.Module):
    """Image-to-points network (owns the shared image encoder)."""

    def __init__(self, cfg: CLIP3RConfig, rope: RoPE2D | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        rope = rope or RoPE2D(cfg.rope_freq)
        self.encoder = ViTEncoder(cfg.patch_size, cfg.enc_dim, cfg.enc_depth, cfg.enc_heads, cfg.mlp_ratio, rope)
        self.token_norm = LayerNorm(cfg.enc_dim)
        self.clip_injection = CLIPInjection(cfg.enc_dim, cfg.clip_dim) if cfg.clip_injection else None
        self.decoder_embed = nn.Linear(cfg.enc_dim, cfg.dec_dim)
        args = (cfg.dec_depth, cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio, rope, cfg.pool)
        self.keyframe_decoder = MultiViewDecoder(*args)
        self.support_decoder = MultiViewDecoder(*args)
        self.dec_norm = LayerNorm(cfg.dec_dim)
        self.keyframe_head = make_point_head(cfg)
        self.support_head = make_point_head(cfg)
        self.retrieval = RetrievalScorer(cfg.dec_dim)

    # -- stages -------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(B, V, 3, H, W)`` -> raw tokens ``(B, V, N, C_enc)`` and the patch grid."""
        return self.encoder(images)

    def fuse(self, tokens: torch.Tensor, clip: torch.Tensor | None = None,
             clip_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw tokens ``(..., N, C_enc)`` -> decoder-ready tokens and the injected delta.

        clip: F_oCLIP ``(..., N, d_clip)`` on the patch grid; clip_valid ``(..., N)`` bool.
        Without F_oCLIP, or with the injection disabled (ablation), the delta is None.
        """
        x = self.token_norm(tokens)
        if clip is None or self.clip_injection is None:
            return x, None
        return self.clip_injection(x, clip, clip_valid)

    def decode(self, fused: torch.Tensor, grid: tuple[int, int], keyframe: int | None = None,
               return_retrieval_tokens: bool = False):
        """Fused tokens ``(B, V, N, C_enc)`` (V >= 2) -> points ``(B, V, H, W, 3)`` in the
        keyframe's camera frame and conf ``(B, V, H, W)``, in input view order.

        return_retrieval_tokens: also return the support views' decoder tokens after
        ``cfg.retrieval_depth`` blocks ``(B, V - 1, N, C_dec)`` (support views in window order,
        keyframe left out): exactly what :meth:`retrieval_tokens` computes for these views as
        candidates, for free (training the retrieval scorer on the same pass)."""
        B, V = fused.shape[:2]
        if V < 2:
            raise ValueError("I2P needs a window of at least 2 frames")
        k = V // 2 if keyframe is None else int(keyframe) % V
        x = self.decoder_embed(fused)
        kf = x[:, k:k + 1]
        sup = torch.cat((x[:, :k], x[:, k + 1:]), dim=1)
        la, lb = two_way_decode(self.keyframe_decoder, self.support_decoder, kf, sup, grid)
        retrieval_tokens = lb[self.cfg.retrieval_depth]
        la[-1], lb[-1] = self.dec_norm(la[-1]), self.dec_norm(lb[-1])
        pk, ck = self.keyframe_head(views_to_batch(la), grid)  # (B, H, W, 3), (B, H, W)
        ps, cs = self.support_head(views_to_batch(lb), grid)  # (B*(V-1), H, W, 3), ...
        H, W = ck.shape[-2:]
        ps, cs = ps.reshape(B, V - 1, H, W, 3), cs.reshape(B, V - 1, H, W)
        points = torch.cat((ps[:, :k], pk[:, None], ps[:, k:]), dim=1)
        conf = torch.cat((cs[:, :k], ck[:, None], cs[:, k:]), dim=1)
        if return_retrieval_tokens:
            return points, conf, retrieval_tokens
        return points, conf

    def forward(self, images: torch.Tensor, clip: torch.Tensor | None = None,
                clip_valid: torch.Tensor | None = None, keyframe: int | None = None) -> I2POutput:
        """images ``(B, V, 3, H, W)`` (normalised to [-1, 1] as in DUSt3R), clip
        ``(B, V, N, d_clip)``, clip_valid ``(B, V, N)``; keyframe index (default ``V // 2``)."""
        tokens, grid = self.encode(images)
        fused, delta = self.fuse(tokens, clip, clip_valid)
        k = images.shape[1] // 2 if keyframe is None else int(keyframe) % images.shape[1]
        points, conf = self.decode(fused, grid, k)
        return I2POutput(points, conf, k, tokens, delta)

    # -- retrieval ----------------------------------------------------------------------
    def retrieval_tokens(self, keyframe: torch.Tensor, candidates: torch.Tensor, grid: tuple[int, int],
                         depth: int | None = None) -> torch.Tensor:
        """Fused tokens of the new keyframe ``(B, N, C_enc)`` and of scene-buffer candidates
        ``(B, K, N, C_enc)`` -> the candidates' support-decoder tokens ``(B, K, N, C_dec)``
        after ``depth`` blocks (default ``cfg.retrieval_depth``)."""
        depth = self.cfg.retrieval_depth if depth is None else depth
        _, lb = two_way_decode(self.keyframe_decoder, self.support_decoder,
                               self.decoder_embed(keyframe[:, None]), self.decoder_embed(candidates), grid,
                               depth=depth, update_a_last=False)
        return lb[-1]

    def retrieval_scores(self, keyframe: torch.Tensor, candidates: torch.Tensor, grid: tuple[int, int],
                         depth: int | None = None) -> torch.Tensor:
        """Per-candidate scores ``(B, K)`` in [0, 1) (higher = better scene frame)."""
        return self.retrieval(self.retrieval_tokens(keyframe, candidates, grid, depth))
