"""The 2D-3D OVS fused segment descriptor in the semantics stage.

After lifting, each 3D segment's descriptor is computed by
:class:`core.models.ovs.OvsFusion` from:

- ``clip_inst``: the segment's aggregated image descriptor (the lifting's weighted mean of
  its best masks' descriptors: exactly the "plain averaged" descriptor);
- ``clip_scene``: the mean full-keyframe descriptor of the keyframes where the segment has
  a mask (the image encoder on the whole frame, no mask);
- ``dino``: DINOv2 patch features pooled under the segment's masks (area-weighted), only
  when a local DINOv2 checkpoint is configured (``OV3R_DINO_CHECKPOINT``) **and** the fusion
  weights were trained with DINO; otherwise absent (the fusion's no-DINO path);
- ``points``: the segment's 3D points with their colours and PCA normals
  (:func:`core.models.ovs.estimate_normals`, 512 points drawn with a fixed seed).

The image encoder is the compact encoder today (it fills the CLIP3R slot until CLIP3R, issue
6, exists); the fused descriptor lives in the same 384-d all-MiniLM-L6-v2 text space, so the
query path is unchanged. torch is imported only when a :class:`FusedDescriber` is built.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hashing import file_sha256
from ..models.shipped import OVS_DEFAULT, check_not_retired

__all__ = ["DEFAULT_OVS_WEIGHTS", "FusedDescriber", "SegmentInputs", "ovs_weights_path"]

DEFAULT_OVS_WEIGHTS = OVS_DEFAULT


def ovs_weights_path(explicit: str | Path | None = None) -> Path | None:
    """The OVS fusion weights to use: ``explicit``, else ``$OV3R_OVS_WEIGHTS``, else the shipped
    ``ovs_v6.safetensors``; None when that file does not exist (no torch import)."""
    asked = explicit or os.environ.get("OV3R_OVS_WEIGHTS")
    if asked:
        check_not_retired(asked)
    p = Path(asked or DEFAULT_OVS_WEIGHTS)
    return p if p.is_file() else None


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class SegmentInputs:
    """Per segment (S of them): ``clip_inst (S,D)``, ``clip_scene (S,D)``, ``dino (S,C)`` or None,
    ``dino_present (S,)`` bool, ``points``: S arrays ``(n_i, 6)`` (xyz metres, rgb in [0, 1])."""

    clip_inst: np.ndarray
    clip_scene: np.ndarray
    dino: np.ndarray | None
    dino_present: np.ndarray
    points: list[np.ndarray]


class FusedDescriber:
    """Loads an :class:`~core.models.ovs.OvsFusion` checkpoint (and DINOv2 when configured and
    usable) and turns lifted segments into fused descriptors.

    ``frame_features(image, masks, encoder)`` is called per keyframe during the stage;
    ``segment_inputs(scene, lift, frame_features)`` after lifting; ``describe(inputs)`` runs the
    fusion; ``metadata(...)`` is what the SemanticScene records."""

    def __init__(self, weights: str | Path, dino_checkpoint: str | Path | None = None, device: str | None = None,
                 max_points: int | None = None, seed: int = 0) -> None:
        import torch

        from ..models.ovs import OvsFusion, load_checkpoint

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.weights = Path(weights)
        ck = load_checkpoint(self.weights, "fusion")
        self.fusion = OvsFusion.from_checkpoint(ck).to(self.device).eval()
        self.meta = ck.metadata
        self.space_id = ck.metadata.get("space_id")
        self.encoder_sha256 = ck.metadata.get("encoder_sha256")  # the image encoder it was trained on
        self.crop = ck.metadata.get("crop", "masked")  # the mask crops of its training descriptors
        self.sha256 = file_sha256(self.weights)
        trained = json.loads(ck.metadata.get("trained_paths", '["clip_inst", "clip_scene", "points", "dino"]'))
        self.dino_trained = "dino" in trained
        self.max_points = int(max_points or self.fusion.cfg.point.n_points)
        self.seed = seed
        self.dino = None
        dino_checkpoint = dino_checkpoint or os.environ.get("OV3R_DINO_CHECKPOINT") or None
        if dino_checkpoint and not self.dino_trained:
            self.dino_status = "not used: these fusion weights were trained without DINO"
        elif dino_checkpoint:
            from ..models.ovs import DinoV2

            self.dino = DinoV2.load(dino_checkpoint, device=self.device)
            self.dino_status = "loaded" if self.dino.available else f"absent: {self.dino.reason}"
            if not self.dino.available:
                self.dino = None
        else:
            self.dino_status = "absent: no DINOv2 checkpoint configured (OV3R_DINO_CHECKPOINT)"

    @property
    def dim(self) -> int:
        return int(self.fusion.cfg.dim)

    @property
    def clip_dim(self) -> int:
        return int(self.fusion.cfg.clip_dim)

    def compatible(self, encoder) -> str | None:
        """None when ``encoder``'s descriptors can feed this fusion, else the reason they cannot."""
        space, dim = getattr(encoder, "space_id", None), getattr(encoder, "dim", None)
        if space != self.space_id:
            return f"image encoder space {space!r} is not the fusion's {self.space_id!r}"
        if dim != self.clip_dim:
            return f"image encoder width {dim} is not the fusion's {self.clip_dim}"
        sha = getattr(encoder, "weights_sha256", None)
        if self.encoder_sha256 and sha and sha != self.encoder_sha256:
            # same space, other weights (e.g. compact_v1): its descriptors are not the inputs it learned
            return "the image encoder's weights are not the ones the fusion was trained on"
        return None

    # ------------------------------------------------------------------------------ per keyframe

    def frame_features(self, image: np.ndarray, masks, encoder) -> dict[str, Any]:
        """``{"scene": (D,) full-frame descriptor, "dino": (K, C) per-mask DINO features or None,
        "area": (K,) mask areas}``."""
        img = np.asarray(image)
        scene = _normalise(np.asarray(encoder.encode(img[None], None), np.float32)[0])
        area = np.array([float(np.asarray(m).sum()) for m in masks], np.float32)
        dino = None
        if self.dino is not None and len(masks):
            dino = self.dino.segment_features(img, np.asarray(masks, bool)).float().cpu().numpy()
        return {"scene": scene, "dino": dino, "area": area}

    # ------------------------------------------------------------------------------ per segment

    def segment_inputs(self, scene, lift, frame_features: list[dict[str, Any]]) -> SegmentInputs:
        """Inputs of every segment of ``scene`` (after :func:`lifting.lift_into_scene` returned ``lift``)."""
        S = len(scene.segments)
        D = scene.segments.descriptor.shape[1] if S else self.clip_dim
        frames = [[] for _ in range(S)]
        dsum = None
        dw = np.zeros(S, np.float64)
        for f, ms in enumerate(lift.mask_segment):
            ms = np.asarray(ms)
            for s in np.unique(ms[ms >= 0]):
                frames[int(s)].append(f)
            ff = frame_features[f]
            if ff.get("dino") is not None and len(ms):
                if dsum is None:
                    dsum = np.zeros((S, ff["dino"].shape[1]), np.float64)
                ok = ms >= 0
                np.add.at(dsum, ms[ok], ff["dino"][ok] * ff["area"][ok, None])
                np.add.at(dw, ms[ok], ff["area"][ok])
        all_scene = np.stack([ff["scene"] for ff in frame_features]) if frame_features else np.zeros((0, D))
        clip_scene = np.zeros((S, D), np.float32)
        for s in range(S):
            fs = frames[s] if frames[s] else list(range(len(frame_features)))
            clip_scene[s] = _normalise(all_scene[fs].mean(0)) if len(fs) else 0.0
        dino, present = None, np.zeros(S, bool)
        if dsum is not None:
            present = dw > 0
            dino = (dsum / np.maximum(dw, 1e-12)[:, None]).astype(np.float32)
        seg = np.asarray(scene.segment_id)
        order = np.argsort(seg, kind="stable")
        bounds = np.searchsorted(seg[order], np.arange(S + 1))
        cols = np.asarray(scene.colors, np.float32) / 255.0
        pts = [np.concatenate([scene.points[order[bounds[s]:bounds[s + 1]]],
                               cols[order[bounds[s]:bounds[s + 1]]]], 1).astype(np.float32) for s in range(S)]
        return SegmentInputs(_normalise(np.asarray(scene.segments.descriptor, np.float32)), clip_scene, dino, present,
                             pts)

    def describe(self, inputs: SegmentInputs, use_points: bool = True, use_dino: bool = True,
                 batch: int = 128) -> np.ndarray:
        """``(S, D)`` L2-normalised fused descriptors. ``use_points`` / ``use_dino`` = False run the
        fusion without that path (the ablation's variants)."""
        import torch

        from ..models.ovs import collate_points, estimate_normals

        S = len(inputs.clip_inst)
        out = np.zeros((S, self.dim), np.float32)
        g = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for i in range(0, S, batch):
                j = min(S, i + batch)
                ci = torch.from_numpy(inputs.clip_inst[i:j]).to(self.device)
                cs = torch.from_numpy(inputs.clip_scene[i:j]).to(self.device)
                dino = present = None
                if use_dino and inputs.dino is not None and self.dino_trained:
                    dino = torch.from_numpy(inputs.dino[i:j]).to(self.device)
                    present = torch.from_numpy(inputs.dino_present[i:j]).to(self.device)
                pts = msk = None
                if use_points:
                    segs = [torch.from_numpy(np.concatenate([p, np.zeros((len(p), 3), np.float32)], 1))
                            for p in inputs.points[i:j]]
                    pts, msk = collate_points(segs, self.max_points, g)
                    if bool(msk.any()):
                        pts[..., 6:9] = estimate_normals(pts[..., :3], msk)
                    pts, msk = pts.to(self.device), msk.to(self.device)
                d = self.fusion(ci, cs, dino, pts, msk, dino_present=present)
                out[i:j] = d.float().cpu().numpy()
        return _normalise(out)

    def metadata(self, use_points: bool = True, used_dino: bool = False) -> dict[str, Any]:
        paths = ["clip_inst", "clip_scene"] + (["dino"] if used_dino else []) + (["points"] if use_points else [])
        thr = None
        try:
            t, b = float(self.meta["logit_scale"]), float(self.meta["logit_bias"])
            thr = -b / t if t else None
        except (KeyError, ValueError):
            pass
        out = {"kind": "ovs_fusion", "weights": self.weights.name, "sha256": self.sha256, "paths": paths,
               "dino": self.dino_status, "space": self.space_id, "crop": self.crop}
        if thr is not None:
            out["threshold"] = thr  # sigmoid(t cos + b) = 0.5 for the fused descriptor
        if "other_threshold" in self.meta:  # calibrated on the validation rooms (core.bench.other_threshold)
            out["other_threshold"] = float(self.meta["other_threshold"])
        return out
