"""``ImageEncoder``: the shipped compact image tower behind a numpy interface.

``ImageEncoder.from_pretrained()`` loads ``weights/compact_v8.safetensors`` (committed
in the repo, offline); ``encode(crops, masks)`` returns ``(B, 384)`` float32 rows in the
all-MiniLM-L6-v2 text space, L2-normalised, comparable by cosine with
:class:`core.semantics.text_encoder.TextEncoder` embeddings.

Weights are safetensors only (never pickles). The file's metadata holds ``config``
(the :class:`CompactConfig` as JSON), ``space_id``, ``logit_scale``, ``logit_bias``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

from ...hashing import file_sha256
from ...precision import resolve_precision
from ..shipped import COMPACT_DEFAULT, check_not_retired
from .build import build_net
from .net import CompactConfig, CompactImageNet
from .preprocess import ArrayOrList, preprocess

__all__ = ["ImageEncoder", "DEFAULT_WEIGHTS", "save_weights", "load_trainable", "SPACE_ID", "resolve_weights",
           "weights_metadata", "write_derived"]

#: compact_v8: compact_v4 (COCO backbone) + compact_v7 (ImageNet backbone) averaged (ensemble_net.py)
DEFAULT_WEIGHTS = COMPACT_DEFAULT
SPACE_ID = "all-MiniLM-L6-v2"


def save_weights(net: CompactImageNet, path: Union[str, Path], logit_scale: float, logit_bias: float,
                 extra: Optional[Dict[str, str]] = None, half: bool = True) -> Path:
    """Write ``net`` as safetensors (fp16 by default) with its config in the metadata."""
    from safetensors.torch import save_file

    state = net.trainable_state_dict() if hasattr(net, "trainable_state_dict") else net.state_dict()
    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu() for k, v in state.items()}
    meta = {"config": json.dumps(net.cfg.to_dict()), "space_id": SPACE_ID, "logit_scale": str(float(logit_scale)),
            "logit_bias": str(float(logit_bias)), "format": "ov3r-compact-1"}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=meta)
    return path


def resolve_weights(name: Union[str, Path]) -> Path:
    """A bare file name (no folder) is a file of the shipped weights folder; anything else is taken as given."""
    return DEFAULT_WEIGHTS.parent / str(name) if Path(name).name == str(name) else Path(name)


def weights_metadata(path: Union[str, Path]) -> Dict[str, str]:
    """The safetensors metadata of a weights file (``config``, ``logit_scale``, ...), tensors not read."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def write_derived(src: Union[str, Path], out: Union[str, Path], key: str, record: Dict,
                  config: Optional[Dict] = None, tensors: Optional[Dict[str, torch.Tensor]] = None) -> Path:
    """Copy the compact weights ``src`` to ``out`` with ``config`` (a ``CompactConfig.to_dict()``) in
    place of its own and ``tensors`` added or replaced; metadata ``key`` records ``record`` plus the base
    file's name and SHA-256. The calibrated "other" threshold is dropped: it belonged to ``src``'s
    descriptors (recalibrate with ``python -m core.bench.other_threshold --write``)."""
    from safetensors.torch import load_file, save_file

    src, out = Path(src), Path(out)
    meta = weights_metadata(src)
    sd = {**load_file(str(src)), **(tensors or {})}
    if config is not None:
        meta["config"] = json.dumps(config)
    meta.pop("other_threshold", None)
    meta.pop("other_threshold_calibration", None)
    meta[key] = json.dumps({**record, "base": src.name, "base_sha256": file_sha256(src)})
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(out), metadata=meta)
    return out


def load_trainable(net: torch.nn.Module, sd: Dict[str, torch.Tensor], source: object = "") -> None:
    """Load ``sd`` into ``net``; only a frozen shipped backbone (``[...].backbone.*``) may be absent."""
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (k.startswith("backbone.") or ".backbone." in k)]
    if missing or unexpected:
        raise ValueError(f"{source}: weights do not fit the network (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")


class ImageEncoder:
    """Compact image encoder: ``encode(crops (B,H,W,3) uint8, masks (B,H,W) bool | None) -> (B,384)``."""

    space_id = SPACE_ID

    def __init__(self, net: CompactImageNet, device: Union[str, torch.device] = "cpu",
                 logit_scale: float = 10.0, logit_bias: float = -10.0, metadata: Optional[Dict[str, str]] = None,
                 batch_size: int = 8, flip_tta: bool = False, precision: str = "fp32") -> None:
        # NHWC: oneDNN's CPU convolutions run 1.3-1.9x faster on it (fp32 and bf16 alike; bf16 gains nothing on
        # the default NCHW), with the same outputs (docs/experiments/semantics.md)
        self.net = net.to(device, memory_format=torch.channels_last).eval()
        # Inference only: frozen backbones' batch norms folded into their convolutions (same outputs up to
        # float rounding, 1.2x on the ImageNet backbone); the net is not trained or saved from here.
        for m in self.net.modules():
            if hasattr(m, "fold_batch_norms"):
                m.fold_batch_norms()
        self.device = torch.device(device)
        #: "fp32" (default: training, evaluation) or "auto" / "bf16": the forward under bf16 autocast
        #: (the semantics stage's default where the CPU has fast bf16: ~2x, cosine >= 0.98 to fp32)
        self.autocast_dtype, self.precision = resolve_precision(precision, self.device.type, "image encoder")
        self.logit_scale = float(logit_scale)
        self.logit_bias = float(logit_bias)
        self.metadata = dict(metadata or {})
        #: crops per forward pass. Small on purpose: a batch of 64 at 256 px has activations of tens of MB,
        #: which glibc maps and unmaps at every layer (> its 32 MB mmap ceiling), so the pass spends most
        #: of its time zeroing fresh pages; in the pipeline 8 runs compact_v8 ~1.2-1.3x faster per crop than 64
        #: and the demo's peak memory is 30 % lower (docs/experiments/history.md, "Encoder batch size and the lifting's memory")
        self.batch_size = int(batch_size)
        #: also encode the mirrored crop and average (2x the cost, usually slightly better)
        self.flip_tta = bool(flip_tta)

    @property
    def dim(self) -> int:
        return self.net.cfg.dim

    @property
    def size(self) -> int:
        return self.net.cfg.size

    @classmethod
    def from_pretrained(cls, path: Union[str, Path, None] = None, device: Optional[str] = None,
                        precision: str = "fp32") -> "ImageEncoder":
        """Load safetensors weights (default: the shipped ``compact_v8``); ``precision`` as ``__init__``."""
        from safetensors.torch import load_file

        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        if not path.exists():
            check_not_retired(path)
            raise FileNotFoundError(f"compact image encoder weights not found: {path}")
        meta = weights_metadata(path)
        if "config" not in meta:
            raise ValueError(f"{path}: not an ov3r compact encoder (no 'config' metadata)")
        if meta.get("space_id", SPACE_ID) != SPACE_ID:
            raise ValueError(f"{path}: text space {meta.get('space_id')!r} != {SPACE_ID!r}")
        net = build_net(CompactConfig.from_dict(json.loads(meta["config"])))
        sd = load_file(str(path))
        load_trainable(net, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        enc = cls(net, device, float(meta.get("logit_scale", 10.0)), float(meta.get("logit_bias", -10.0)), meta,
                  precision=precision)
        enc.weights_sha256 = file_sha256(path)  # models trained on its outputs (OVS fusion) check it
        return enc

    @torch.no_grad()
    def encode(self, crops: ArrayOrList, masks: Optional[ArrayOrList] = None) -> np.ndarray:
        """Embed crops: ``(B, H, W, 3) uint8`` (or a list of differently sized crops) and optional
        ``(B, H, W) bool`` masks -> ``(B, 384) float32`` L2-normalised."""
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for i in range(0, n, self.batch_size):
            m = None if masks is None else masks[i:i + self.batch_size]
            x = preprocess(crops[i:i + self.batch_size], m, self.size).to(self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                                enabled=self.autocast_dtype is not None):
                y = self.net(x).float()
                if self.flip_tta:
                    y = y + self.net(x.flip(-1)).float()
            out.append(torch.nn.functional.normalize(y, dim=-1).cpu())
        return torch.cat(out).numpy().astype(np.float32)

    @property
    def pools_regions(self) -> bool:
        """Whether :meth:`encode_regions` works: the pretrained-backbone towers pool whole-image maps,
        the small from-scratch ResNet (``CompactImageNet``) only encodes crops."""
        return hasattr(self.net, "regions")

    @torch.no_grad()
    def encode_regions(self, image: np.ndarray, w: np.ndarray, box: np.ndarray, scale: float) -> np.ndarray:
        """K regions of one image in one backbone pass (per ensemble member): ``image (H, W, 3) uint8``,
        ``w`` / ``box`` ``(K, h, w)`` float32 in [0, 1] (object masks and their context crops, any
        resolution of the image's aspect) -> ``(K, 384) float32`` L2-normalised. The backbone sees the
        image with its long side at ``scale`` crop sizes; the regions pool its maps as the crops did."""
        if len(w) == 0:
            return np.zeros((0, self.dim), np.float32)
        rgb = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().to(self.device)
        wt, bt = (torch.from_numpy(np.ascontiguousarray(a, np.float32))[:, None].to(self.device) for a in (w, box))
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None):
            y = self.net.regions(rgb, wt, bt, scale).float()
        return torch.nn.functional.normalize(y, dim=-1).cpu().numpy().astype(np.float32)

    def scores(self, image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        """``(B, 384), (T, 384) -> (B, T)`` sigmoid probabilities ``sigmoid(t * cos + b)``."""
        z = self.logit_scale * image_emb @ text_emb.T + self.logit_bias
        return 1.0 / (1.0 + np.exp(-z))
