"""Shared by the OVS tests: a tiny fusion config and a weight-free stand-in image encoder in its space."""

import numpy as np

from core.models.ovs import FusionConfig
from core.models.ovs.point_encoder import PointEncoderConfig

D = 32
TINY = FusionConfig(dim=D, clip_dim=D, dino_dim=16, dino_proj=8, heads=4, mlp_ratio=1.0, mask_hidden=32,
                    weight_hidden=32, point=PointEncoderConfig(dim=D, n_points=64, centroids=(16, 8),
                                                               neighbours=(8, 4), widths=(16, 16, 32), hidden=32))


class ColourEncoder:
    """Stand-in image encoder in the fusion's space: colour statistics under the mask -> D dims.
    ``calls`` counts the crops it encoded."""

    space_id, dim, size = "all-MiniLM-L6-v2", D, 32

    def __init__(self):
        self.W = np.random.default_rng(5).normal(size=(6, D)).astype(np.float32)
        self.calls = 0

    def encode(self, crops, masks=None):
        self.calls += len(crops)
        out = []
        for i, c in enumerate(crops):
            c = np.asarray(c, np.float32) / 255.0
            m = np.ones(c.shape[:2], bool) if masks is None or masks[i] is None else np.asarray(masks[i], bool)
            px = c[m] if m.any() else c.reshape(-1, 3)
            out.append(np.r_[px.mean(0), px.std(0)] @ self.W)
        e = np.stack(out)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
