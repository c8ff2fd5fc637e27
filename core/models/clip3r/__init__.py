"""CLIP3R (Ov3R, CVPR 2026): a SLAM3R-style point-map network with CLIP semantics inside.

- :mod:`.config`: ``CLIP3RConfig``, presets ``paper`` / ``small``, ``get_config``.
- :mod:`.i2p`: image-to-points over a window (shared ViT encoder, CLIP injection,
  keyframe / support multi-view decoders, point heads).
- :mod:`.l2w`: local-to-world registration against retrieved scene frames, DPT head for
  per-pixel CLIP3R features.
- :mod:`.retrieval`, :mod:`.reservoir`: choosing scene frames, the scene buffer.
- :mod:`.losses`, :mod:`.checkpoint`, :mod:`.slam3r_keys`: training losses, our
  safetensors checkpoints, loading SLAM3R's public I2P / L2W weights from a local path.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .clip_injection import CLIPInjection
from .config import PRESETS, CLIP3RConfig, get_config
from .dpt_head import DPTHead
from .i2p import I2P, I2POutput
from .l2w import L2W, L2WOutput
from .losses import clip_feature_loss, confidence_l1_loss, normalize_pointmaps
from .model import CLIP3R, FrameTokens, count_parameters
from .multiview_blocks import MultiViewBlock, MultiViewDecoder, two_way_decode
from .reservoir import ReservoirBuffer
from .retrieval import RetrievalScorer, top_k_frames
from .rope import RoPE2D
from .slam3r_keys import load_slam3r, map_slam3r_key, map_slam3r_state_dict
from .vit_encoder import ViTEncoder

__all__ = [
    "CLIP3R",
    "I2P",
    "L2W",
    "PRESETS",
    "CLIP3RConfig",
    "CLIPInjection",
    "DPTHead",
    "FrameTokens",
    "I2POutput",
    "L2WOutput",
    "MultiViewBlock",
    "MultiViewDecoder",
    "ReservoirBuffer",
    "RetrievalScorer",
    "RoPE2D",
    "ViTEncoder",
    "clip_feature_loss",
    "confidence_l1_loss",
    "count_parameters",
    "get_config",
    "load_checkpoint",
    "load_slam3r",
    "map_slam3r_key",
    "map_slam3r_state_dict",
    "normalize_pointmaps",
    "save_checkpoint",
    "top_k_frames",
    "two_way_decode",
]
