"""Trained compact encoder files -> one ensemble file (``CompactConfig.backbone="ensemble"``).

``python -m core.models.compact.merge A.safetensors B.safetensors OUT.safetensors [--weights 1 1]``;
bare file names resolve in the shipped weights folder. Nothing is trained: each member's weights are
copied, and the file records each member's name and SHA-256.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from ...hashing import file_sha256
from .build import build_net
from .encoder import ImageEncoder, resolve_weights, save_weights
from .ensemble_net import EnsembleCompactNet
from .net import CompactConfig

__all__ = ["merge"]


def merge(weights: Sequence[Union[str, Path]], out: Union[str, Path],
          member_weights: Sequence[float] | None = None) -> Path:
    """Trained compact encoder files -> one "ensemble" file. Its logit scale / bias are the
    members' weighted means (recalibrate ``other_threshold`` on the validation rooms after:
    ``python -m core.bench.other_threshold --write``); its metadata names each member's file,
    SHA-256 and frozen backbone's SHA-256."""
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
    net = build_net(cfg)
    for m, e in zip(net.members, encs):
        m.load_state_dict(e.net.state_dict())
    tot = sum(w)
    scale = sum(wi * e.logit_scale for wi, e in zip(w, encs)) / tot
    bias = sum(wi * e.logit_bias for wi, e in zip(w, encs)) / tot
    info = [{"file": Path(p).name, "sha256": file_sha256(p), "weight": wi,
             "backbone_sha256": e.metadata.get("backbone_sha256", "")} for p, wi, e in zip(weights, w, encs)]
    cmd = " ".join(["python -m core.models.compact.merge", *(Path(p).name for p in weights), Path(out).name,
                    "--weights", *(f"{x:g}" for x in w)])
    return save_weights(net, out, scale, bias, extra={"members": json.dumps(info), "command": cmd})


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m core.models.compact.merge", description=merge.__doc__)
    p.add_argument("files", nargs="+", help="member files, then the output (bare file names resolve in the shipped "
                   "weights folder)")
    p.add_argument("--weights", type=float, nargs="*", default=None, help="member weights (default: equal)")
    a = p.parse_args(argv)
    if len(a.files) < 3:
        p.error("give at least two member files and the output file")
    # a bare name is a shipped file unless it exists here; a path with a folder is taken as given
    files = [Path(f) if Path(f).exists() else resolve_weights(f) for f in a.files]
    print(merge(files[:-1], files[-1], a.weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
