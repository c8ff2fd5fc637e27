"""Read a checkpoint file's tensors without running pickled code (one reader for every model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

__all__ = ["read_state_dict"]


def read_state_dict(path: str | Path, what: str = "checkpoint", wrappers: Sequence[str] = ("model", "state_dict"),
                    prefixes: Sequence[str] = ("module.",)) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of a ``.safetensors`` file, or of any other file through
    ``torch.load(weights_only=True)``. Training checkpoints' ``wrappers`` keys are unwrapped in
    order, a ``prefixes`` entry shared by every name (DDP's ``module.``) is stripped, and
    non-tensor entries are dropped. ``what`` names the file in the errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in wrappers:
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping):
        raise TypeError(f"{path}: expected a state dict, got {type(sd).__name__}")
    sd = {k: v for k, v in sd.items() if torch.is_tensor(v)}
    for prefix in prefixes:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd
