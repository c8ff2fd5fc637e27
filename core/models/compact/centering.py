"""Centring of the compact encoder's descriptors: a calibration mean taken out before the cosine.

Image embeddings trained into a frozen text space share a large common component: the mean of the
validation rooms' normalised segment descriptors has a norm of 0.53, so every crop looks a little
like the classes the training crops held most, and those classes win the argmax for objects the
encoder is unsure of (a prior, not evidence). Taking ``alpha`` times that mean out of a descriptor
before the cosine with a text removes the shared part; ``alpha = 0`` is the encoder as trained.

The mean is measured on the validation rooms (the calibration set of the "other" threshold,
:mod:`core.bench.other_threshold`; never the test suite), from the segments' descriptors as the
semantics stage makes them, and stored in the encoder's weights file (tensor ``centering.mean``,
metadata ``centering``), so a scene's descriptors stay tied to one file and its hash.

Applied to final descriptors only (a segment's aggregated descriptor, an object's mean view), never
inside the lifting, whose merge cosines are calibrated on the raw embeddings.

    python -m core.models.compact.centering compact_v8.safetensors compact_v10.safetensors [--alpha 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MEAN_KEY", "calibration_mean", "centre", "main", "write_centred"]

#: the tensor name of the calibration mean inside a compact weights file
MEAN_KEY = "centering.mean"


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def centre(desc: np.ndarray, mean: np.ndarray | None, alpha: float) -> np.ndarray:
    """``desc (S,D)`` (or ``(D,)``) -> the same shape, L2-normalised ``unit(unit(desc) - alpha * mean)``.
    ``mean (D,)``; None or ``alpha == 0``: only normalised. Zero rows stay zero."""
    d = _unit(desc)
    if mean is None or not alpha or d.size == 0:
        return d
    zero = np.linalg.norm(d, axis=-1, keepdims=True) == 0
    return np.where(zero, 0.0, _unit(d - float(alpha) * np.asarray(mean, np.float32))).astype(np.float32)


def calibration_mean(descriptors: Sequence[np.ndarray]) -> np.ndarray:
    """``descriptors``: per room ``(S_r, D)`` segment descriptors -> ``(D,)`` float32 mean of the
    normalised rows (each segment counts once, whatever its size: the prior is over objects)."""
    rows = [_unit(d) for d in descriptors if len(d)]
    if not rows:
        raise ValueError("calibration_mean: no segment descriptors")
    return np.concatenate(rows).mean(0).astype(np.float32)


def write_centred(src: str | Path, out: str | Path, mean: np.ndarray, alpha: float, source: str) -> Path:
    """Copy the compact weights ``src`` to ``out`` with ``mean (D,)`` and ``alpha`` added (metadata
    ``centering`` = {alpha, source, base file and SHA-256}); any earlier centring of ``src`` is replaced and
    its calibrated "other" threshold dropped (it belonged to the uncentred descriptors)."""
    import torch

    from .encoder import weights_metadata, write_derived

    dim = json.loads(weights_metadata(src)["config"]).get("dim", 384)
    mean = np.asarray(mean, np.float32).reshape(-1)
    if mean.shape != (dim,):
        raise ValueError(f"centring mean of shape {mean.shape} for an encoder of dimension {dim}")
    return write_derived(src, out, "centering", {"alpha": float(alpha), "source": source},
                         tensors={MEAN_KEY: torch.from_numpy(mean.copy())})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.models.compact.centering", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="compact weights (a bare name resolves in the shipped weights folder)")
    p.add_argument("out", help="the centred copy (a bare name: in the shipped weights folder)")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--rooms", type=int, default=8, help="validation rooms the mean is measured on")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--cache", type=Path, default=None,
                   help="keep each room's segments here (other_threshold.room_set_segments)")
    a = p.parse_args(argv)
    from .encoder import resolve_weights, weights_metadata

    src, out = resolve_weights(a.src), resolve_weights(a.out)
    if "centering" in weights_metadata(src):
        p.error(f"{src.name} is centred already: give the uncentred encoder")
    os.environ["OV3R_COMPACT_WEIGHTS"] = str(src)  # the rooms' descriptors come from the uncentred encoder
    from ...bench.other_threshold import room_set_segments

    rooms = room_set_segments("validation", a.rooms, a.frames, a.cache)
    mean = calibration_mean([r.descriptors for r in rooms])
    segments = sum(len(r.descriptors) for r in rooms)
    src_note = f"validation rooms val_0..{a.rooms - 1}, {a.frames} keyframes, GT geometry, {segments} segments"
    print(write_centred(src, out, mean, a.alpha, src_note), f"|mean| = {np.linalg.norm(mean):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
