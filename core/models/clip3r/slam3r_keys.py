"""Loading SLAM3R's public I2P / L2W weights into CLIP3R's ``paper`` config.

The weights (``Image2PointsModel`` / ``Local2WorldModel`` of SLAM3R, CC BY-NC-SA 4.0) are
never downloaded or shipped by this project: the user fetches them and gives their paths.
They load with safetensors or ``torch.load(weights_only=True)`` (no pickled code), from a
bare state dict, a training checkpoint ``{"model": state_dict, ...}``, or a DDP state dict
(``module.`` prefixes). The CLIP parts (``i2p.clip_injection``, ``l2w.feature_head``) have
no SLAM3R counterpart and keep their fresh initialisation (the injection starts as an
exact no-op, so the loaded model reconstructs like SLAM3R until it is fine-tuned).

Key mapping (SLAM3R name -> ours; ``{i}`` a block index, ``*`` the rest of the name, which
is the same on both sides: ``norm1``, ``attn.qkv``, ``attn.proj``, ``cross_attn.projq``,
``cross_attn.projk``, ``cross_attn.projv``, ``cross_attn.proj``, ``norm2``, ``norm3``,
``norm_y``, ``mlp.fc1``, ``mlp.fc2``, ``weight`` / ``bias``):

I2P (``Image2PointsModel``)             ours
    patch_embed.proj.*                  i2p.encoder.patch_embed.proj.*
    enc_blocks.{i}.*                    i2p.encoder.blocks.{i}.*
    enc_norm.*                          i2p.token_norm.*
    decoder_embed.*                     i2p.decoder_embed.*
    mv_dec_blocks1.{i}.*                i2p.keyframe_decoder.blocks.{i}.*   (reference view = keyframe)
    mv_dec_blocks2.{i}.*                i2p.support_decoder.blocks.{i}.*    (source views = support)
    dec_norm.*                          i2p.dec_norm.*
    downstream_head1.proj.*             i2p.keyframe_head.proj.*
    downstream_head2.proj.*             i2p.support_head.proj.*
    corr_score_norm.*                   i2p.retrieval.norm.*
    corr_score_proj.fc1.* / fc2.*       i2p.retrieval.mlp.fc1.* / fc2.*

L2W (``Local2WorldModel``, public model built with ``need_encoder=False``)
    enc_norm.*                          l2w.token_norm.*
    decoder_embed.*                     l2w.decoder_embed.*
    ponit_embedder.*  (sic)             l2w.point_embed.proj.*
    void_pe_token                       l2w.point_embed.void_token
    mv_dec_blocks1.{i}.*                l2w.scene_decoder.blocks.{i}.*      (reference views = scene frames)
    mv_dec_blocks2.{i}.*                l2w.register_decoder.blocks.{i}.*   (source views = keyframes)
    dec_norm.*                          l2w.dec_norm.*
    downstream_head1.proj.*             l2w.scene_head.proj.*
    downstream_head2.proj.*             l2w.register_head.proj.*
  dropped on purpose (reported in ``dropped``):
    patch_embed.proj.*                  L2W never embeds images: it reads the tokens the shared
                                        encoder (I2P's) computed; SLAM3R's L2W does the same at
                                        inference and never uses its own patch embedding.
    enc_blocks.{i}.*                    only in L2W checkpoints trained with need_encoder=True:
                                        SLAM3R trains both networks with the encoder frozen at
                                        the same DUSt3R weights, so it duplicates I2P's encoder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

import torch

from ..state_io import read_state_dict as _read_state_dict
from .model import CLIP3R

__all__ = [
    "SLAM3R_DROPPED",
    "SLAM3R_RULES",
    "SLAM3RLoadReport",
    "load_slam3r",
    "map_slam3r_key",
    "map_slam3r_state_dict",
    "read_state_dict",
]

PathLike = Union[str, os.PathLike]

# (pattern on the SLAM3R key, replacement giving our key) per network, tried in order
SLAM3R_RULES: dict[str, list[tuple[str, str]]] = {
    "i2p": [
        (r"^patch_embed\.proj\.(.+)$", r"i2p.encoder.patch_embed.proj.\1"),
        (r"^enc_blocks\.(\d+)\.(.+)$", r"i2p.encoder.blocks.\1.\2"),
        (r"^enc_norm\.(.+)$", r"i2p.token_norm.\1"),
        (r"^decoder_embed\.(.+)$", r"i2p.decoder_embed.\1"),
        (r"^mv_dec_blocks1\.(\d+)\.(.+)$", r"i2p.keyframe_decoder.blocks.\1.\2"),
        (r"^mv_dec_blocks2\.(\d+)\.(.+)$", r"i2p.support_decoder.blocks.\1.\2"),
        (r"^dec_norm\.(.+)$", r"i2p.dec_norm.\1"),
        (r"^downstream_head1\.proj\.(.+)$", r"i2p.keyframe_head.proj.\1"),
        (r"^downstream_head2\.proj\.(.+)$", r"i2p.support_head.proj.\1"),
        (r"^corr_score_norm\.(.+)$", r"i2p.retrieval.norm.\1"),
        (r"^corr_score_proj\.(fc[12])\.(.+)$", r"i2p.retrieval.mlp.\1.\2"),
    ],
    "l2w": [
        (r"^enc_norm\.(.+)$", r"l2w.token_norm.\1"),
        (r"^decoder_embed\.(.+)$", r"l2w.decoder_embed.\1"),
        (r"^ponit_embedder\.(.+)$", r"l2w.point_embed.proj.\1"),
        (r"^void_pe_token$", r"l2w.point_embed.void_token"),
        (r"^mv_dec_blocks1\.(\d+)\.(.+)$", r"l2w.scene_decoder.blocks.\1.\2"),
        (r"^mv_dec_blocks2\.(\d+)\.(.+)$", r"l2w.register_decoder.blocks.\1.\2"),
        (r"^dec_norm\.(.+)$", r"l2w.dec_norm.\1"),
        (r"^downstream_head1\.proj\.(.+)$", r"l2w.scene_head.proj.\1"),
        (r"^downstream_head2\.proj\.(.+)$", r"l2w.register_head.proj.\1"),
    ],
}

# SLAM3R keys deliberately not loaded (see the module docstring for why)
SLAM3R_DROPPED: dict[str, list[str]] = {
    "i2p": [],
    "l2w": [r"^patch_embed\.", r"^enc_blocks\."],
}

_COMPILED = {k: [(re.compile(p), r) for p, r in v] for k, v in SLAM3R_RULES.items()}
_DROPPED = {k: [re.compile(p) for p in v] for k, v in SLAM3R_DROPPED.items()}


def _check_kind(kind: str) -> None:
    if kind not in _COMPILED:
        raise ValueError(f"kind must be 'i2p' or 'l2w', got {kind!r}")


def map_slam3r_key(kind: str, key: str) -> str | None:
    """Our parameter name for a SLAM3R key of network ``kind`` (``"i2p"`` / ``"l2w"``);
    ``None`` if the key is dropped on purpose. Raises ``KeyError`` for an unknown key."""
    _check_kind(kind)
    for pat, rep in _COMPILED[kind]:
        if pat.match(key):
            return pat.sub(rep, key)
    if any(p.match(key) for p in _DROPPED[kind]):
        return None
    raise KeyError(f"unknown SLAM3R {kind} key {key!r}")


def map_slam3r_state_dict(kind: str, state: Mapping[str, torch.Tensor]
                          ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """SLAM3R state dict -> ``(ours, dropped_keys, unknown_keys)`` (keys in SLAM3R naming)."""
    _check_kind(kind)
    ours: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for k, v in state.items():
        try:
            name = map_slam3r_key(kind, k)
        except KeyError:
            unknown.append(k)
            continue
        if name is None:
            dropped.append(k)
        else:
            ours[name] = v
    return ours, dropped, unknown


def read_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a SLAM3R checkpoint file, without running any pickled code
    (``core.models.state_io.read_state_dict``: ``{"model": ...}`` / ``{"state_dict": ...}``
    unwrapped, DDP's ``module.`` prefix stripped)."""
    return _read_state_dict(path, what="SLAM3R checkpoint (download it yourself; Ov3R never does)")


@dataclass
class SLAM3RLoadReport:
    loaded: list[str] = field(default_factory=list)  # our names that received SLAM3R weights
    missing: list[str] = field(default_factory=list)  # our names left at their initialisation
    unexpected: list[str] = field(default_factory=list)  # "kind:key" SLAM3R keys we do not know
    dropped: list[str] = field(default_factory=list)  # "kind:key" SLAM3R keys skipped on purpose
    shape_mismatch: list[str] = field(default_factory=list)  # "ours: theirs vs ours"

    @property
    def missing_non_clip(self) -> list[str]:
        """Missing names other than the CLIP parts (which are expected to start fresh)."""
        fresh = ("i2p.clip_injection.", "l2w.feature_head.")
        return [k for k in self.missing if not k.startswith(fresh)]

    def summary(self) -> str:
        return (f"loaded {len(self.loaded)}, missing {len(self.missing)} "
                f"({len(self.missing_non_clip)} outside the CLIP parts), unexpected {len(self.unexpected)}, "
                f"dropped {len(self.dropped)}, shape mismatches {len(self.shape_mismatch)}")


def load_slam3r(model: CLIP3R, i2p: PathLike | Mapping[str, torch.Tensor] | None = None,
                l2w: PathLike | Mapping[str, torch.Tensor] | None = None, strict: bool = True
                ) -> SLAM3RLoadReport:
    """Copy SLAM3R I2P and/or L2W weights (paths or state dicts) into ``model`` in place.

    strict: raise on unknown keys or shape mismatches (the model must be the ``paper``
    config, or one with the same widths and depths). Missing keys (the CLIP parts, and the
    other network when only one is given) are reported, never an error.
    """
    report = SLAM3RLoadReport()
    ours_all: dict[str, torch.Tensor] = {}
    for kind, src in (("i2p", i2p), ("l2w", l2w)):
        if src is None:
            continue
        state = read_state_dict(src) if isinstance(src, (str, os.PathLike)) else dict(src)
        ours, dropped, unknown = map_slam3r_state_dict(kind, state)
        report.dropped += [f"{kind}:{k}" for k in dropped]
        report.unexpected += [f"{kind}:{k}" for k in unknown]
        ours_all.update(ours)
    target = model.state_dict()
    for name, value in ours_all.items():
        if name not in target:
            report.unexpected.append(f"ours:{name}")
        elif tuple(target[name].shape) != tuple(value.shape):
            report.shape_mismatch.append(f"{name}: {tuple(value.shape)} vs {tuple(target[name].shape)}")
    if strict and (report.unexpected or report.shape_mismatch):
        raise ValueError("SLAM3R checkpoint does not fit this model: "
                         f"unexpected {report.unexpected[:5]}, shape mismatches {report.shape_mismatch[:5]}")
    good = {k: v for k, v in ours_all.items() if k in target and tuple(target[k].shape) == tuple(v.shape)}
    with torch.no_grad():
        for name, value in good.items():
            target[name].copy_(value.to(dtype=target[name].dtype))
    report.loaded = sorted(good)
    report.missing = sorted(set(target) - set(good))
    return report
