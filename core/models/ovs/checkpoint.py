"""OVS checkpoints: safetensors with the module's config as JSON in the file's metadata.

Never pickles: a checkpoint is tensors plus string metadata, so loading one cannot run
code. Metadata keys: ``format`` (:data:`FORMAT`), ``kind`` ("point_encoder" | "fusion"),
``config`` (JSON of the module's config dataclass), ``space_id`` (the text space of the
outputs) and any caller extras (e.g. ``logit_scale`` / ``logit_bias`` of the trained loss,
the training data's hash).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..shipped import check_not_retired

__all__ = ["FORMAT", "SPACE_ID", "Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "ov3r-ovs-1"
SPACE_ID = "all-MiniLM-L6-v2"  # the project's text space (core.semantics.text_encoder.SPACE_ID)


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``state`` (name -> tensor), ``kind``, ``config`` (dict), ``metadata`` (all strings)."""

    state: dict[str, torch.Tensor]
    kind: str
    config: dict
    metadata: dict[str, str] = field(default_factory=dict)


def save_checkpoint(path: str | Path, state: Mapping[str, torch.Tensor], kind: str, config: Mapping,
                    extra: Mapping[str, object] | None = None, half: bool = False,
                    space_id: str = SPACE_ID) -> Path:
    """Write ``state`` (a module's ``state_dict()``) as safetensors.

    ``half=True`` stores floating tensors as fp16 (half the size, to ship; the reload is then
    not bit-identical). Returns the path written."""
    from safetensors.torch import save_file

    # safetensors needs contiguous, unshared CPU tensors
    sd = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).contiguous().cpu().clone()
          for k, v in state.items()}
    meta = {"format": FORMAT, "kind": kind, "config": json.dumps(dict(config), sort_keys=True),
            "space_id": space_id}
    for k, v in (extra or {}).items():
        if k in meta:
            raise ValueError(f"save_checkpoint: extra key {k!r} would overwrite reserved metadata")
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=meta)
    return path


def load_checkpoint(path: str | Path, kind: str | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; ``kind`` (when given) must match.
    fp16-stored tensors come back as float32."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        check_not_retired(path)
        raise FileNotFoundError(f"OVS checkpoint not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an OVS checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{path}: holds a {meta.get('kind')!r}, expected a {kind!r}")
    state = {k: v.float() if v.dtype == torch.float16 else v for k, v in load_file(str(path), device=str(device)).items()}
    return Checkpoint(state, meta["kind"], json.loads(meta["config"]), meta)
