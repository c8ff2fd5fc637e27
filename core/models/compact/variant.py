"""Variants of a trained compact encoder: the same weights, other inference settings.

Two settings change an encoder's embedding without training anything:

- ``conse_weight`` of the ImageNet (``effnet_lite2``) tower, alone or as an ensemble member: how much
  of the ImageNet classifier's own zero-shot embedding (ConSE, ``effnet_net.py``) is added to the
  trained head's;
- ``member_weights`` of an ensemble (``ensemble_net.py``): how the members' embeddings are mixed.

A variant is a copy of the weights file with its config metadata changed and a ``variant`` entry
naming the base file and its SHA-256. Its calibrated "other" threshold is dropped (it belonged to the
base's descriptors: recalibrate with ``python -m core.bench.other_threshold --write``).

    python -m core.models.compact.variant compact_v8.safetensors /tmp/v8_conse1.safetensors --conse-weight 1
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .encoder import resolve_weights, weights_metadata, write_derived

__all__ = ["main", "write_variant"]


def _set_conse(cfg: dict, weight: float) -> int:
    """Set ``conse_weight`` on every ``effnet_lite2`` tower of ``cfg`` (in place); -> how many."""
    towers = [cfg] if cfg.get("backbone") == "effnet_lite2" else []
    towers += [m for m in cfg.get("members", ()) if m.get("backbone") == "effnet_lite2"]
    for t in towers:
        t["conse_weight"] = float(weight)
    return len(towers)


def write_variant(src: str | Path, out: str | Path, conse_weight: float | None = None,
                  member_weights: Sequence[float] | None = None) -> Path:
    """Copy the compact weights ``src`` to ``out`` with the settings changed; -> ``out``.
    Raises ``ValueError`` for a setting the encoder does not have (ConSE without an ImageNet tower,
    member weights without an ensemble or of the wrong count) or when nothing is changed."""
    src = Path(src)
    meta = weights_metadata(src)
    if "config" not in meta:
        raise ValueError(f"{src}: not an ov3r compact encoder (no 'config' metadata)")
    cfg = json.loads(meta["config"])
    changed = {}
    if conse_weight is not None:
        if not _set_conse(cfg, conse_weight):
            raise ValueError(f"{src.name} has no ImageNet (effnet_lite2) tower: no ConSE weight to set")
        changed["conse_weight"] = float(conse_weight)
    if member_weights is not None:
        w = [float(x) for x in member_weights]
        if cfg.get("backbone") != "ensemble" or len(w) != len(cfg.get("members", ())):
            raise ValueError(f"{src.name}: {len(w)} member weights for {len(cfg.get('members', ()))} ensemble members")
        if min(w) < 0 or sum(w) <= 0:
            raise ValueError(f"member weights {w}: non-negative, not all zero")
        cfg["member_weights"] = w
        changed["member_weights"] = w
    if not changed:
        raise ValueError("write_variant: no setting to change")
    return write_derived(src, out, "variant", changed, config=cfg)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.models.compact.variant", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="compact weights (a bare name resolves in the shipped weights folder)")
    p.add_argument("out", help="the variant's file")
    p.add_argument("--conse-weight", type=float, default=None, help="the ImageNet tower's ConSE weight")
    p.add_argument("--member-weights", type=float, nargs="+", default=None, help="an ensemble's member weights")
    a = p.parse_args(argv)
    try:
        print(write_variant(resolve_weights(a.src), a.out, a.conse_weight, a.member_weights))
    except ValueError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
