"""DINOv2 adapter: patch features for the fusion's DINO path, from a local checkpoint.

The ViT comes from timm (``vit_small_patch14_dinov2`` by default, built with
``pretrained=False`` and ``dynamic_img_size=True`` so any image size multiple of the patch
works). Weights load only from a local file (``.safetensors``, or ``.pt`` / ``.pth`` /
``.bin`` read with ``torch.load(weights_only=True)``) in any of the three layouts DINOv2 is
distributed in:
- Meta's original (``dinov2_vits14_pretrain.pth``: ``blocks.N.attn.qkv``, ``mask_token``),
- timm's (``timm/vit_small_patch14_dinov2.lvd142m``),
- Hugging Face transformers' (``facebook/dinov2-small``: ``encoder.layer.N.attention...``).
A download happens only with ``allow_download=True`` (timm's pretrained weights).

Without a checkpoint (and without consent) the adapter is **absent**: ``status ==
"absent"``, :meth:`DinoV2.segment_features` returns None, and the fusion runs its
no-DINO path, which it was trained for (path dropout).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..state_io import read_state_dict as _read_state_dict
from .pooling import mask_pool

__all__ = ["DEFAULT_ARCH", "DinoV2", "build_dinov2", "convert_hf_dinov2", "read_state_dict"]

DEFAULT_ARCH = "vit_small_patch14_dinov2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_dinov2(arch: str = DEFAULT_ARCH, pretrained: bool = False, meta: bool = False, **kwargs) -> torch.nn.Module:
    """A timm DINOv2 ViT without classifier, accepting any image size (multiple of the patch).

    ``meta=True`` builds it on the meta device (no memory, no random init: the weights are
    about to be replaced by a checkpoint's). ``pretrained=True`` downloads: callers must
    have the user's consent."""
    try:
        import timm
    except ImportError as e:  # the adapter then reports the reason instead of failing deep inside
        raise ImportError("the DINOv2 adapter needs timm (pip install timm)") from e
    kw = {"pretrained": pretrained, "num_classes": 0, "dynamic_img_size": True}
    kw.update(kwargs)
    if meta:
        with torch.device("meta"):
            return timm.create_model(arch, **kw)
    return timm.create_model(arch, **kw)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a DINOv2 checkpoint file, never unpickling code; training wrappers and the
    ``backbone.`` / ``module.`` / ``dinov2.`` prefixes are removed (``core.models.state_io``)."""
    return _read_state_dict(path, what="DINOv2 checkpoint", wrappers=("model", "state_dict", "teacher"),
                prefixes=("backbone.", "module.", "dinov2."))


def convert_hf_dinov2(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face transformers ``Dinov2Model`` names -> Meta's original DINOv2 names.

    Accepts both transformers spellings of the attention (``attention.attention.query`` /
    ``attention.output.dense`` as stored on the Hub, and ``attention.q_proj`` / ``o_proj``).
    SwiGLU (ViT-g) checkpoints are not supported."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str, str], torch.Tensor] = {}
    simple = {
        "embeddings.cls_token": "cls_token", "embeddings.mask_token": "mask_token",
        "embeddings.position_embeddings": "pos_embed", "embeddings.register_tokens": "register_tokens",
        "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
    }
    layer_map = [
        (r"norm1\.(weight|bias)", r"norm1.\1"), (r"norm2\.(weight|bias)", r"norm2.\1"),
        (r"attention\.output\.dense\.(weight|bias)", r"attn.proj.\1"), (r"attention\.o_proj\.(weight|bias)", r"attn.proj.\1"),
        (r"layer_scale1\.lambda1", "ls1.gamma"), (r"layer_scale2\.lambda1", "ls2.gamma"),
        (r"mlp\.fc1\.(weight|bias)", r"mlp.fc1.\1"), (r"mlp\.fc2\.(weight|bias)", r"mlp.fc2.\1"),
    ]
    qkv_names = {"attention.attention.query": "q", "attention.attention.key": "k", "attention.attention.value": "v",
                 "attention.q_proj": "q", "attention.k_proj": "k", "attention.v_proj": "v"}
    for k, v in sd.items():
        if k in simple:
            out[simple[k]] = v
            continue
        m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", k)
        if m is None:
            raise ValueError(f"unexpected key in a transformers DINOv2 checkpoint: {k!r}")
        i, rest = int(m.group(1)), m.group(2)
        stem, _, kind = rest.rpartition(".")
        if stem in qkv_names:
            qkv[(i, kind, qkv_names[stem])] = v
            continue
        for pat, rep in layer_map:
            if re.fullmatch(pat, rest):
                out[f"blocks.{i}." + re.sub(pat, rep, rest)] = v
                break
        else:
            raise ValueError(f"unsupported transformers DINOv2 key {k!r} (SwiGLU / ViT-g is not supported)")
    for i, kind in sorted({(i, kind) for i, kind, _ in qkv}):
        try:
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([qkv[(i, kind, p)] for p in "qkv"], 0)
        except KeyError as e:
            raise ValueError(f"layer {i}: incomplete query/key/value {kind}") from e
    return out


def _is_hf(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith(("embeddings.", "encoder.layer.")) for k in sd)


class DinoV2:
    """A frozen DINOv2 ViT, or its absence.

    ``status``: "loaded" or "absent" (``reason`` says why). ``features(images) -> (B, C, h, w)``
    patch features; ``segment_features(image, masks) -> (K, C)`` or None when absent.
    """

    def __init__(self, model: torch.nn.Module | None, arch: str = DEFAULT_ARCH, source: str = "",
                 reason: str = "", short_side: int = 448, device: str | torch.device = "cpu") -> None:
        self.model = model.eval().to(device) if model is not None else None
        self.arch = arch
        self.source = source  # checkpoint path, "download", or ""
        self.reason = reason
        self.short_side = int(short_side)
        self.device = torch.device(device)

    @property
    def status(self) -> str:
        return "loaded" if self.model is not None else "absent"

    @property
    def available(self) -> bool:
        return self.model is not None

    @property
    def dim(self) -> int:
        """Feature width C (0 when absent)."""
        return int(self.model.embed_dim) if self.model is not None else 0

    @property
    def patch_size(self) -> int:
        return int(self.model.patch_embed.patch_size[0]) if self.model is not None else 14

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, arch: str = DEFAULT_ARCH, allow_download: bool = False,
             device: str | torch.device | None = None, short_side: int = 448, **model_kwargs) -> DinoV2:
        """From a local ``checkpoint`` (a missing file is an error, not an absence); with none,
        downloads timm's weights only when ``allow_download``; otherwise absent.
        ``model_kwargs`` go to timm (e.g. ``img_size``, or a smaller ``depth`` in tests)."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if checkpoint is not None:
            sd = read_state_dict(checkpoint)  # first: a missing file fails before timm is imported
            model = build_dinov2(arch, meta=True, **model_kwargs)
            cls.load_into(model, sd)
            return cls(model, arch, str(checkpoint), short_side=short_side, device=device)
        if allow_download:
            return cls(build_dinov2(arch, pretrained=True, **model_kwargs), arch, "download", short_side=short_side,
                       device=device)
        return cls(None, arch, reason="no DINOv2 checkpoint given (and no download consent)", short_side=short_side,
                   device=device)

    @staticmethod
    def load_into(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
        """Load a state dict of any supported layout into a timm DINOv2 ViT (strict: every weight
        must be present). A model built on the meta device gets the tensors assigned."""
        from timm.models.vision_transformer import checkpoint_filter_fn

        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        if _is_hf(sd):
            sd = convert_hf_dinov2(sd)
        sd = checkpoint_filter_fn(sd, model)  # Meta layout (mask_token, registers), pos_embed resampling
        on_meta = any(p.is_meta for p in model.parameters())
        missing, unexpected = model.load_state_dict(sd, strict=False, assign=on_meta)
        if missing or unexpected:
            raise ValueError(f"DINOv2 checkpoint does not fit the model: missing {missing[:5]}"
                             f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                             f"{'...' if len(unexpected) > 5 else ''}")
        if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
            raise ValueError("DINOv2 model still has uninitialised tensors after loading")

    # ------------------------------------------------------------------------------------ features

    def preprocess(self, images) -> torch.Tensor:
        """``(B, H, W, 3)`` / ``(H, W, 3)`` uint8 (numpy or tensor) or ``(B, 3, H, W)`` float in [0, 1]
        -> ``(B, 3, H', W')`` ImageNet-normalised, resized so the short side is about
        ``short_side`` and both sides are multiples of the patch size."""
        x = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
        if x.dtype == torch.uint8:
            x = (x[None] if x.dim() == 3 else x).permute(0, 3, 1, 2).float() / 255.0
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"DinoV2.preprocess: unexpected image shape {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        H, W = x.shape[-2:]
        p = self.patch_size
        s = self.short_side / min(H, W)
        h, w = max(p, round(H * s / p) * p), max(p, round(W * s / p) * p)
        if (h, w) != (H, W):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=x.device)[:, None, None]
        return (x - mean) / std

    @torch.no_grad()
    def features(self, x: torch.Tensor, preprocessed: bool = True) -> torch.Tensor:
        """Patch features ``(B, C, H / p, W / p)`` (final-norm tokens without the class / register
        tokens). ``x``: ``(B, 3, H, W)`` normalised (``preprocessed``) or raw images for :meth:`preprocess`."""
        if self.model is None:
            raise RuntimeError(f"DINOv2 is absent: {self.reason}")
        if not preprocessed:
            x = self.preprocess(x)
        B, _, H, W = x.shape
        p = self.patch_size
        tok = self.model.forward_features(x.to(self.device))  # (B, prefix + h * w, C)
        h, w = H // p, W // p
        return tok[:, self.model.num_prefix_tokens:].reshape(B, h, w, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def segment_features(self, image, masks) -> torch.Tensor | None:
        """One image ``(H, W, 3)`` uint8 and its masks ``(K, H, W)`` bool -> ``(K, C)`` mean patch
        features under each mask (zeros for an empty mask), or None when DINOv2 is absent."""
        if self.model is None:
            return None
        fmap = self.features(self.preprocess(image))[0]  # (C, h, w)
        m = torch.as_tensor(np.asarray(masks)) if not torch.is_tensor(masks) else masks
        if m.shape[0] == 0:
            return fmap.new_zeros(0, fmap.shape[0])
        return mask_pool(fmap, m.to(fmap.device))[0]
