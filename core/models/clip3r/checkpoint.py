"""CLIP3R checkpoints of our own: one safetensors file, the config in its metadata.

The metadata (all strings, as safetensors wants) holds ``format`` = ``ov3r.clip3r``,
``format_version``, ``config`` (JSON of :class:`.config.CLIP3RConfig`) and any extra
string fields the caller adds (training step, data hash ...). Tensors are saved exactly
as they are (no dtype change), so a reload is bit-identical. No pickles anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ...cache import cache_dir
from .config import CLIP3RConfig
from .model import CLIP3R

__all__ = ["FORMAT", "FORMAT_VERSION", "default_weights_path", "load_checkpoint", "read_checkpoint_metadata",
           "save_checkpoint"]

FORMAT = "ov3r.clip3r"
FORMAT_VERSION = "1"

PathLike = Union[str, os.PathLike]


def save_checkpoint(model: CLIP3R, path: PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` (``.safetensors``); returns the path.

    Written to a temporary name first and renamed, so an interrupted save never leaves a
    truncated checkpoint under the real name.
    """
    path = Path(path)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, config=model.cfg.to_json())
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_checkpoint_metadata(path: PathLike) -> dict[str, str]:
    """The metadata of a checkpoint, checked to be one of ours."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an Ov3R CLIP3R checkpoint (format={meta.get('format')!r}); "
                         "SLAM3R checkpoints load with core.models.clip3r.slam3r_keys.load_slam3r")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported CLIP3R checkpoint version {meta.get('format_version')!r} "
                         f"(this code reads version {FORMAT_VERSION})")
    return meta


def load_checkpoint(path: PathLike, device: str | torch.device = "cpu", strict: bool = True
                    ) -> tuple[CLIP3R, dict[str, str]]:
    """Build the model from the stored config and load the weights. Returns ``(model, metadata)``."""
    meta = read_checkpoint_metadata(path)
    cfg = CLIP3RConfig.from_json(meta["config"])
    state = load_file(str(path), device=str(device))
    if strict:
        with torch.device("meta"):
            model = CLIP3R(cfg)  # no memory spent on weights that are replaced just after
        missing, unexpected = model.load_state_dict(state, strict=True, assign=True)
    else:
        with torch.device(device):
            model = CLIP3R(cfg)  # keys absent from the file keep their fresh initialisation
        missing, unexpected = model.load_state_dict(state, strict=False)
    meta = dict(meta, missing=json.dumps(list(missing)), unexpected=json.dumps(list(unexpected)))
    return model, meta


def default_weights_path() -> Path:
    """Our default CLIP3R weights: ``$OV3R_CACHE/clip3r/clip3r.safetensors`` (``~/.cache/ov3r`` by
    default). ``ov3r train clip3r --install`` writes it; the ``clip3r`` engine reads it when no
    other weights are given."""
    return cache_dir("clip3r", "clip3r.safetensors")
