"""CLIP3R configuration: one frozen dataclass, two presets (``paper`` and ``small``).

``paper`` matches SLAM3R's public I2P / L2W models (ViT-L encoder, ViT-B decoders, 224 px,
patch 16, RoPE 100, linear point heads) so their checkpoints load through
:mod:`.slam3r_keys`; the CLIP parts (injection, DPT feature head) are extra. ``small``
is sized to train on a 2-core CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

__all__ = ["PRESETS", "CLIP3RConfig", "get_config"]


@dataclass(frozen=True)
class CLIP3RConfig:
    # input
    img_size: tuple[int, int] = (224, 224)  # (H, W); both multiples of patch_size
    patch_size: int = 16
    # shared ViT image encoder
    enc_dim: int = 1024
    enc_depth: int = 24
    enc_heads: int = 16
    # multi-view decoders (I2P keyframe/support, L2W scene/register)
    dec_dim: int = 768
    dec_depth: int = 12
    dec_heads: int = 12
    mlp_ratio: float = 4.0
    rope_freq: float = 100.0
    pool: str = "max"  # how a view merges what it read from several other views: "max" | "mean"
    # point heads: "linear" (SLAM3R's) or "dpt"
    head_type: str = "linear"
    # CLIP parts
    clip_dim: int = 512  # width of F_oCLIP and of the predicted CLIP3R features
    clip_injection: bool = True  # False = the ablation without F_fuse (plain SLAM3R I2P)
    # DPT (feature head, and point heads when head_type == "dpt")
    dpt_layer_dims: tuple[int, int, int, int] = (96, 192, 384, 768)
    dpt_feature_dim: int = 256
    dpt_hooks: tuple[int, int, int, int] = (3, 6, 9, 12)  # decoder layers read (0 = embedded input)
    # retrieval: how many support-decoder blocks the correlation score reads
    retrieval_depth: int = 2
    # streaming (used by the engine, stored with the weights so a checkpoint says how it was meant to run)
    window_init: int = 5  # L for the initial window
    window_incremental: int = 11  # L for later windows
    num_scene_frames: int = 5  # top-k scene frames retrieved for L2W
    buffer_size: int = 100  # reservoir capacity

    def __post_init__(self) -> None:
        # normalise list -> tuple (JSON round trip) and validate early with clear messages
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(v))
        if isinstance(self.img_size, int):
            object.__setattr__(self, "img_size", (self.img_size, self.img_size))
        h, w = self.img_size
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"img_size {self.img_size} must be a multiple of patch_size {self.patch_size}")
        for name, dim, heads in (("enc", self.enc_dim, self.enc_heads), ("dec", self.dec_dim, self.dec_heads)):
            if dim % heads or (dim // heads) % 4:
                raise ValueError(f"{name}_dim / {name}_heads must be a multiple of 4 (2D RoPE), got {dim}/{heads}")
        if self.pool not in ("max", "mean"):
            raise ValueError(f"pool must be 'max' or 'mean', got {self.pool!r}")
        if self.head_type not in ("linear", "dpt"):
            raise ValueError(f"head_type must be 'linear' or 'dpt', got {self.head_type!r}")
        if len(self.dpt_hooks) != 4 or max(self.dpt_hooks) > self.dec_depth or min(self.dpt_hooks) < 0:
            raise ValueError(f"dpt_hooks {self.dpt_hooks} must be 4 layer indices in [0, {self.dec_depth}]")
        if not 1 <= self.retrieval_depth <= self.dec_depth:
            raise ValueError(f"retrieval_depth must be in [1, {self.dec_depth}]")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid ``(h, w)``."""
        return self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CLIP3RConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown CLIP3R config keys: {unknown}")
        return cls(**d)

    @classmethod
    def from_json(cls, s: str) -> CLIP3RConfig:
        return cls.from_dict(json.loads(s))


PRESETS: dict[str, CLIP3RConfig] = {
    # SLAM3R's I2P / L2W (Image2PointsModel / Local2WorldModel in scripts/train_*.sh) + CLIP parts.
    "paper": CLIP3RConfig(),
    # ~16 M parameters (I2P 8.1 M, L2W 7.6 M): sized so a 5-view 224 px window is a fraction of a
    # second of CPU (about 13 GFLOP).
    # clip_dim 384 = the project's offline text space (all-MiniLM-L6-v2).
    "small": CLIP3RConfig(
        img_size=(224, 224),
        enc_dim=192, enc_depth=6, enc_heads=3,
        dec_dim=192, dec_depth=4, dec_heads=3,
        clip_dim=384,
        dpt_layer_dims=(48, 96, 192, 192), dpt_feature_dim=96, dpt_hooks=(1, 2, 3, 4),
        num_scene_frames=3, buffer_size=50,
    ),
}


def get_config(name: str, **overrides: Any) -> CLIP3RConfig:
    """A preset by name (``"paper"`` or ``"small"``), with optional field overrides."""
    try:
        cfg = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown CLIP3R preset {name!r}; choose from {sorted(PRESETS)}") from None
    return replace(cfg, **overrides) if overrides else cfg
