"""Compact encoders averaged (``CompactConfig.backbone="ensemble"``): two or more trained compact
towers, each at its own input size, whose embeddings are mixed by fixed weights.

Members trained on different backbones fail on different objects (compact_v4's COCO detector
features, compact_v7's ImageNet classifier features), so their weighted mean generalises better
to furniture neither saw than either alone (measured in ``MODEL_CARD.md``). Built from trained
files by :func:`merge`; nothing is trained jointly. The file stores each member's trainable state
under ``members.<i>.`` and its config in ``CompactConfig.members``; frozen backbones stay where
each member's own loader finds them (committed or installed).

Input ``(B, 4, S, S)`` as :func:`core.models.compact.preprocess.preprocess` makes it for
``S = cfg.size`` (the largest member's); a smaller member gets it resized to its own size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Dict, Union

import torch
import torch.nn.functional as F
from torch import nn

from .net import CompactConfig, build_net

__all__ = ["EnsembleCompactNet", "merge"]


class EnsembleCompactNet(nn.Module):
    """``forward(x (B, 4, S, S)) -> (B, dim)``: ``normalize(sum_i w_i * member_i(resize(x, S_i)))``."""

    def __init__(self, cfg: CompactConfig) -> None:
        super().__init__()
        if len(cfg.members) < 2:
            raise ValueError("an ensemble config names at least two members (core.models.compact.ensemble_net.merge)")
        self.cfg = cfg
        self.members = nn.ModuleList(build_net(CompactConfig.from_dict(dict(m))) for m in cfg.members)
        w = cfg.member_weights or (1.0,) * len(cfg.members)
        if len(w) != len(cfg.members) or min(w) < 0 or sum(w) <= 0:
            raise ValueError(f"ensemble member weights {w} do not fit {len(cfg.members)} members")
        self.weights = tuple(float(x) for x in w)

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Every member's state without its frozen backbone."""
        return {k: v for k, v in self.state_dict().items() if ".backbone." not in k}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = 0.0
        for w, m in zip(self.weights, self.members):
            s = m.cfg.size
            xs = x if x.shape[-1] == s else F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                                                          antialias=True)
            e = e + w * m(xs)
        return F.normalize(e, dim=-1)


def merge(weights: Sequence[Union[str, Path]], out: Union[str, Path],
          member_weights: Sequence[float] | None = None) -> Path:
    """Trained compact encoder files -> one "ensemble" file. Its logit scale / bias are the
    members' weighted means (recalibrate ``other_threshold`` on the validation rooms after:
    ``python -m core.bench.other_threshold --write``); its metadata names each member's file,
    SHA-256 and frozen backbone's SHA-256."""
    from ...hashing import file_sha256
    from .encoder import ImageEncoder, save_weights

    if len(weights) < 2:
        raise ValueError("merge needs at least two encoder files")
    encs = [ImageEncoder.from_pretrained(p, device="cpu") for p in weights]
    w = [float(x) for x in (member_weights or [1.0] * len(encs))]
    if len(w) != len(encs):
        raise ValueError(f"{len(w)} member weights for {len(encs)} files")
    for p, e in zip(weights, encs):
        if isinstance(e.net, EnsembleCompactNet):
            raise ValueError(f"merge: {Path(p).name} is an ensemble already; merge its members")
    if len({e.dim for e in encs}) != 1:
        raise ValueError(f"merge: the members embed in different dimensions {[e.dim for e in encs]}")
    members = tuple(e.net.cfg.to_dict() for e in encs)
    cfg = CompactConfig(size=max(e.size for e in encs), dim=encs[0].dim, backbone="ensemble", members=members,
                        member_weights=tuple(w))
    net = EnsembleCompactNet(cfg)
    for m, e in zip(net.members, encs):
        m.load_state_dict(e.net.state_dict())
    tot = sum(w)
    scale = sum(wi * e.logit_scale for wi, e in zip(w, encs)) / tot
    bias = sum(wi * e.logit_bias for wi, e in zip(w, encs)) / tot
    info = [{"file": Path(p).name, "sha256": file_sha256(p), "weight": wi,
             "backbone_sha256": e.metadata.get("backbone_sha256", "")} for p, wi, e in zip(weights, w, encs)]
    cmd = " ".join(["python -m core.models.compact.ensemble_net", *(Path(p).name for p in weights), Path(out).name,
                    "--weights", *(f"{x:g}" for x in w)])
    return save_weights(net, out, scale, bias, extra={"members": json.dumps(info), "command": cmd})


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m core.models.compact.ensemble_net", description=merge.__doc__)
    p.add_argument("files", nargs="+", help="member files, then the output (bare file names resolve in the shipped "
                   "weights folder)")
    p.add_argument("--weights", type=float, nargs="*", default=None, help="member weights (default: equal)")
    a = p.parse_args(argv)
    if len(a.files) < 3:
        p.error("give at least two member files and the output file")
    from .encoder import resolve_weights

    # a bare name is a shipped file unless it exists here; a path with a folder is taken as given
    files = [Path(f) if Path(f).exists() else resolve_weights(f) for f in a.files]
    print(merge(files[:-1], files[-1], a.weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
