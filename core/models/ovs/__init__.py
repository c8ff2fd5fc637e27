"""2D-3D OVS (Ov3R): the fused segment descriptor and its parts.

- :mod:`.point_encoder`: the 3D point encoder ("3D-CLIP") and its distillation loss.
- :mod:`.dino`: the DINOv2 adapter (local checkpoint; "absent" without one).
- :mod:`.fusion`: the fusion of CLIP3R, DINO and 3D features into one descriptor.
- :mod:`.loss`: L_sim, the SigLIP sigmoid loss over segment-text pairs.
- :mod:`.checkpoint`: safetensors + JSON config save / load.
- :mod:`.pooling`, :mod:`.attention`: shared building blocks.

Descriptors live in the all-MiniLM-L6-v2 text space (D = 384) and compare with text by
cosine, like the compact encoder's. torch is imported with the submodules (timm only when
a DINOv2 model is built), so import this package only where the models are needed.
"""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .dino import DinoV2
from .fusion import FusionConfig, FusionOutput, OvsFusion, sample_path_drop
from .loss import SigmoidLoss, sigmoid_loss
from .model_loader import load_model
from .point_encoder import (PointEncoder, PointEncoderConfig, collate_points, distill_loss, estimate_normals,
                            point_features)
from .pooling import grid_tokens, mask_pool

__all__ = ["Checkpoint", "DinoV2", "FusionConfig", "FusionOutput", "OvsFusion", "PointEncoder", "PointEncoderConfig",
           "SigmoidLoss", "collate_points", "distill_loss", "estimate_normals", "grid_tokens", "load_checkpoint",
           "load_model", "mask_pool", "point_features", "sample_path_drop", "save_checkpoint", "sigmoid_loss"]
