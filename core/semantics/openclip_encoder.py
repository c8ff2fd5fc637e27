"""Any open_clip model as the image + text encoder of the descriptors' space.

Weights come from a local checkpoint (``.pt`` / ``.bin`` / ``.safetensors``, loaded with
``weights_only=True``) or, only with ``allow_download=True``, from an open_clip pretrained
tag. ``model_config`` may name a JSON architecture file (registered with open_clip) for
architectures open_clip does not ship.

``load_openclip(...) -> (OpenClipImageEncoder, OpenClipTextEncoder)``: both share one model
and one ``space_id`` ("open_clip:<model>:<weights id>"), the value scenes record in
metadata["text_space"].
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class _Shared:
    """The loaded model, its tokenizer and preprocessing constants."""

    def __init__(self, model_name: str, checkpoint: str | None, pretrained: str | None, allow_download: bool,
                 model_config: str | None, device: str) -> None:
        import open_clip
        import torch

        if checkpoint is None and pretrained is None:
            raise ValueError("open_clip: give a local checkpoint path, or a pretrained tag with allow_download=True")
        if checkpoint is None and not allow_download:
            raise PermissionError(f"open_clip: downloading the pretrained weights {model_name}/{pretrained} needs "
                                  "consent (allow_download=True / --allow-download)")
        if model_config is not None:
            open_clip.add_model_config(Path(model_config))
            model_name = model_name or Path(model_config).stem
        self.device = _device(device)
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise FileNotFoundError(f"open_clip checkpoint not found: {checkpoint}")
            model = open_clip.create_model(model_name, pretrained=None, load_weights=False, pretrained_text=False,
                                           device="cpu")
            open_clip.load_checkpoint(model, str(checkpoint), weights_only=True)
            from ..hashing import file_sha256

            weights_id = file_sha256(checkpoint)[:16]
        else:
            model = open_clip.create_model(model_name, pretrained=pretrained, device="cpu")
            weights_id = str(pretrained)
        self.model = model.to(self.device).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), dtype=torch.float32)
        self.std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), dtype=torch.float32)
        with torch.no_grad():
            self.dim = int(model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1])
        self.space_id = f"open_clip:{model_name}:{weights_id}"
        self.lock = threading.Lock()


class OpenClipImageEncoder:
    """``encode(crops (B,H,W,3) uint8, masks (B,H,W) bool | None) -> (B,D)`` L2-normalised.
    Pixels outside a mask are set to the model's mean colour (zero after normalisation)."""

    def __init__(self, shared: _Shared) -> None:
        self._s = shared
        self.space_id = shared.space_id
        self.dim = shared.dim
        self.size = int(shared.size[0])  # input side: crops are made at this size

    def encode(self, crops: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        s = self._s
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255
        x = (x - s.mean[:, None, None]) / s.std[:, None, None]
        if masks is not None:
            x = x * torch.from_numpy(np.asarray(masks, bool))[:, None].float()
        if tuple(x.shape[-2:]) != s.size:
            x = F.interpolate(x, size=s.size, mode="bilinear", align_corners=False, antialias=True)
        with s.lock, torch.no_grad():
            e = s.model.encode_image(x.to(s.device)).float()
        return F.normalize(e, dim=-1).cpu().numpy().astype(np.float32)


class OpenClipTextEncoder:
    """``encode(texts) -> (T,D)`` L2-normalised (same interface as ``text_encoder.TextEncoder``)."""

    def __init__(self, shared: _Shared) -> None:
        self._s = shared
        self.space_id = shared.space_id
        self.dim = shared.dim

    def encode(self, texts) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        s = self._s
        with s.lock, torch.no_grad():
            e = s.model.encode_text(s.tokenizer(texts).to(s.device)).float()
        return F.normalize(e, dim=-1).cpu().numpy().astype(np.float32)


def load_openclip(model_name: str, checkpoint: str | None = None, pretrained: str | None = None,
                  allow_download: bool = False, model_config: str | None = None,
                  device: str = "auto") -> tuple[OpenClipImageEncoder, OpenClipTextEncoder]:
    """Image and text encoders of one open_clip model (see the module docstring)."""
    shared = _Shared(model_name, checkpoint, pretrained, allow_download, model_config, device)
    return OpenClipImageEncoder(shared), OpenClipTextEncoder(shared)
