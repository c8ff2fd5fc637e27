"""The pipeline's semantics stage: keyframes + reconstruction -> segments in the SemanticScene.

Per registered keyframe (progress "semantics: segments"): depth of the reconstruction by
z-buffer (``projection.render_depth``) -> 2D masks (classical or SAM; the next keyframe's in a second
thread while this one is described) -> one descriptor per
mask (``descriptors.pooled_descriptors``: the keyframe through the encoder's backbone once, its
maps pooled inside the large masks, the small ones pooled from a second pass at a larger scale;
``SemanticsSettings.pooling``). Then
"semantics: lifting": masks -> 3D segments (``lifting.lift_into_scene``). Encoders: "compact"
(shipped weights, all-MiniLM-L6-v2 space) or "openclip" (a local checkpoint; crops only).

Segment descriptors (``SemanticsSettings.descriptor``): "mean" = the lifting's weighted mean of
each segment's best mask descriptors; "fused" = the 2D-3D OVS fusion
(:mod:`.fused_descriptor`: the mean descriptor, the keyframes' full-image descriptors, DINOv2
when configured and the segment's 3D points); the default (None) is "fused" when OVS weights
exist and fit the encoder, else "mean". ``metadata["models"]["descriptor"]`` records which one
made the scene (and why the mean, when the fusion was not used). Last, the room's structure as a
3D cue (:mod:`.structure_cues`, ``SemanticsSettings.structure_weight``): segments lying on the
floor, a wall or the ceiling of the cloud's box are pulled towards that surface's name
(``metadata["models"]["structure_cues"]``); and where each segment stands (:mod:`.object_cues`,
``SemanticsSettings.object_weight``): its height span and reach against each class's, a log-prior on
the class logits (``metadata["models"]["object_cues"]``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..jobs import JobContext
from ..scene import SemanticScene

ENCODERS = ("compact", "openclip")
DESCRIPTORS = ("mean", "fused")


def compact_weights_available() -> bool:
    """True when the shipped compact encoder weights (or OV3R_COMPACT_WEIGHTS) exist (no torch import)."""
    from ..models.shipped import COMPACT_DEFAULT, check_not_retired

    asked = os.environ.get("OV3R_COMPACT_WEIGHTS")
    if asked:
        check_not_retired(asked)
        return Path(asked).is_file()
    return COMPACT_DEFAULT.is_file()


@dataclass
class SemanticsSettings:
    encoder: str = "compact"  # "compact" | "openclip" | "none" (segments without descriptors)
    compact_weights: str | None = None  # other compact weights than the shipped ones
    segmenter: str = "classical"  # "classical" | "sam"
    sam_checkpoint: str | None = None  # local SAM weights (segmenter "sam")
    sam_model_type: str = "vit_b"
    sam_points_per_side: int | None = None  # SAM's automatic point grid; None = SamSettings' 32
    openclip_model: str = "ViT-B-16"
    openclip_checkpoint: str | None = None  # local open_clip weights (encoder "openclip")
    openclip_config: str | None = None  # JSON architecture for models open_clip does not ship
    max_side: int = 320  # resolution of the depth renders and the classical segmenter
    crop_size: int = 224  # crops for encoders that do not say their input size (``encoder.size``)
    crop: str | None = None  # descriptors.CROPS; None: the fusion's training crop, else DEFAULT_CROP
    # descriptors.POOLINGS: a backbone pass per mask ("crop") or per keyframe ("dense"; "hybrid": small masks cropped).
    # The defaults here and below were chosen on the validation rooms (docs/experiments/semantics.md)
    pooling: str = "hybrid"
    pool_scale: float = 2.5  # "dense" / "hybrid": the keyframe's long side in crop sizes of the encoder
    pool_min_side: float = 0.3  # "hybrid": masks whose crop is smaller (fraction of the long side) are small
    pool_small_scale: float | None = 3.5  # "hybrid": small masks pooled from a second pass at this scale; None: cropped
    structure_weight: float = 0.5  # structure_cues: pull of structure segments towards their surface's name
    structure_surfaces: tuple[str, ...] = ("floor", "ceiling")  # walls: doors and windows lie in their plane
    # object_cues: shift of the class logits per unit of log height / reach fit. Off: on the validation rooms
    # 0.06 is the best weight (+0.5 mIoU, within the lifting's noise), so it is an option, not the default
    object_weight: float = 0.0
    lift: Any = None  # lifting.LiftSettings; None = defaults
    descriptor: str | None = None  # "mean" | "fused"; None: fused when OVS weights exist (else mean)
    ovs_weights: str | None = None  # other OVS fusion weights than the shipped ones
    dino_checkpoint: str | None = None  # local DINOv2 weights for the fusion's DINO path
    precision: str = "auto"  # compact encoder: "auto" = bf16 autocast where the CPU has fast bf16, else "fp32"

    @staticmethod
    def from_env(encoder: str) -> SemanticsSettings:
        """Settings for ``encoder``; SAM / open_clip checkpoints from OV3R_SAM_CHECKPOINT,
        OV3R_SAM_MODEL_TYPE, OV3R_SAM_POINTS, OV3R_OPENCLIP_MODEL, OV3R_OPENCLIP_CHECKPOINT, OV3R_OPENCLIP_CONFIG,
        OV3R_COMPACT_WEIGHTS, OV3R_DESCRIPTOR ("mean" | "fused"), OV3R_OVS_WEIGHTS,
        OV3R_DINO_CHECKPOINT, OV3R_CROP, OV3R_POOLING, OV3R_POOL_SCALE, OV3R_POOL_MIN_SIDE, OV3R_POOL_SMALL_SCALE,
        OV3R_STRUCTURE_WEIGHT, OV3R_STRUCTURE_SURFACES (comma-separated), OV3R_OBJECT_WEIGHT,
        OV3R_ENCODER_PRECISION when set."""
        s = SemanticsSettings(encoder=encoder)
        s.sam_checkpoint = os.environ.get("OV3R_SAM_CHECKPOINT") or None
        if s.sam_checkpoint:
            s.segmenter = "sam"
        s.sam_model_type = os.environ.get("OV3R_SAM_MODEL_TYPE", s.sam_model_type)
        if os.environ.get("OV3R_SAM_POINTS"):
            s.sam_points_per_side = int(os.environ["OV3R_SAM_POINTS"])
        s.openclip_model = os.environ.get("OV3R_OPENCLIP_MODEL", s.openclip_model)
        s.openclip_checkpoint = os.environ.get("OV3R_OPENCLIP_CHECKPOINT") or None
        s.openclip_config = os.environ.get("OV3R_OPENCLIP_CONFIG") or None
        s.compact_weights = os.environ.get("OV3R_COMPACT_WEIGHTS") or None
        s.descriptor = os.environ.get("OV3R_DESCRIPTOR") or None
        s.ovs_weights = os.environ.get("OV3R_OVS_WEIGHTS") or None
        s.dino_checkpoint = os.environ.get("OV3R_DINO_CHECKPOINT") or None
        s.crop = os.environ.get("OV3R_CROP") or None
        s.pooling = os.environ.get("OV3R_POOLING") or s.pooling
        s.pool_scale = float(os.environ.get("OV3R_POOL_SCALE") or s.pool_scale)
        s.pool_min_side = float(os.environ.get("OV3R_POOL_MIN_SIDE") or s.pool_min_side)
        if os.environ.get("OV3R_POOL_SMALL_SCALE"):
            s.pool_small_scale = float(os.environ["OV3R_POOL_SMALL_SCALE"]) or None
        s.structure_weight = float(os.environ.get("OV3R_STRUCTURE_WEIGHT") or s.structure_weight)
        if os.environ.get("OV3R_STRUCTURE_SURFACES"):
            s.structure_surfaces = tuple(os.environ["OV3R_STRUCTURE_SURFACES"].split(","))
        if os.environ.get("OV3R_OBJECT_WEIGHT"):
            s.object_weight = float(os.environ["OV3R_OBJECT_WEIGHT"])
        s.precision = os.environ.get("OV3R_ENCODER_PRECISION") or s.precision
        return s


def make_image_encoder(st: SemanticsSettings):
    if st.encoder == "compact":
        from ..models.compact import ImageEncoder

        return ImageEncoder.from_pretrained(st.compact_weights, precision=st.precision)
    if st.encoder == "openclip":
        from .openclip_encoder import load_openclip

        if not st.openclip_checkpoint:
            raise ValueError("the openclip encoder needs a local checkpoint (OV3R_OPENCLIP_CHECKPOINT)")
        return load_openclip(st.openclip_model, st.openclip_checkpoint, model_config=st.openclip_config)[0]
    raise ValueError(f"unknown semantics encoder {st.encoder!r}; use one of {', '.join(ENCODERS)}")


def make_segmenter(st: SemanticsSettings):
    if st.segmenter == "sam":
        from .segment_sam import SamSegmenter, SamSettings

        sam = SamSettings() if st.sam_points_per_side is None else SamSettings(points_per_side=st.sam_points_per_side)
        return SamSegmenter(st.sam_checkpoint, st.sam_model_type, settings=sam)
    from .segment_classical import ClassicalSegmenter, ClassicalSettings

    return ClassicalSegmenter(ClassicalSettings(max_side=st.max_side))


def make_fused_describer(st: SemanticsSettings, encoder, describe=None):
    """-> (FusedDescriber or None, reason for the mean when None). Never raises for a missing or
    unusable fusion: the stage then falls back to averaging and records why."""
    mode = st.descriptor
    if mode not in (None, *DESCRIPTORS):
        raise ValueError(f"unknown descriptor {mode!r}; use one of {', '.join(DESCRIPTORS)}")
    if mode == "mean":
        return None, "settings: descriptor = mean"
    if describe is not None or encoder is None:
        return None, "no image encoder descriptors to fuse"
    from .fused_descriptor import ovs_weights_path

    path = ovs_weights_path(st.ovs_weights)
    if path is None:
        where = st.ovs_weights or os.environ.get("OV3R_OVS_WEIGHTS") or "the shipped ovs_v6.safetensors"
        return None, f"no OVS fusion weights ({where} not found)"
    from .fused_descriptor import FusedDescriber

    fd = FusedDescriber(path, st.dino_checkpoint)
    why = fd.compatible(encoder)
    if why is not None:
        return None, f"{why} ({path.name})"
    return fd, ""


def run_semantics(scene: SemanticScene, images: Sequence[np.ndarray], ctx: JobContext,
                  settings: SemanticsSettings | None = None, encoder=None, segmenter=None,
                  spacing: float | None = None, describe=None, fused=None,
                  capture: dict | None = None) -> SemanticScene:
    """Segment, describe and lift; fills scene.segment_id / segments / metadata in place.

    images: one (H,W,3) uint8 RGB per camera of ``scene.cameras`` (the registered keyframes);
    encoder / segmenter: override the ones the settings would build (tests, warm workers);
    describe: optional ``(frame, image, masks) -> (K,D)`` replacing the encoder (evaluation);
    fused: a ``fused_descriptor.FusedDescriber`` overriding the one the settings would load;
    capture: a dict that receives the intermediate results ("lift", "frame_features",
    "mean_descriptor", "describer", "segment_inputs") for ablations.
    """
    from .descriptors import DEFAULT_CROP, check_pooling, crop_kinds, pooled_descriptors
    from .lifting import lift_into_scene
    from .projection import point_spacing, render_depth, scale_intrinsics

    st = settings or SemanticsSettings()
    cams = scene.cameras
    if len(images) != len(cams):
        raise ValueError(f"run_semantics: {len(images)} images for {len(cams)} cameras")
    t0 = time.perf_counter()
    if encoder is None and st.encoder != "none":  # "none": class-agnostic segments, no descriptors
        encoder = make_image_encoder(st)
    segmenter = segmenter if segmenter is not None else make_segmenter(st)
    if fused is not None and st.descriptor != "mean":
        why = fused.compatible(encoder) if encoder is not None and describe is None else "no image encoder descriptors"
        fd, mean_reason = (fused, "") if why is None else (None, why)
    else:
        fd, mean_reason = make_fused_describer(st, encoder, describe)
    # the crop the fusion was trained on (its inputs must look like its training data)
    crop = st.crop or (fd.crop if fd is not None else DEFAULT_CROP)
    crop_kinds(crop)  # an unknown crop or pooling fails before the first keyframe
    check_pooling(st.pooling)
    frame_feats: list[dict] = []
    spacing = spacing if spacing is not None else point_spacing(scene.points)
    frame_masks: list[list[np.ndarray]] = []
    frame_desc: list[np.ndarray] = []
    M = len(cams)

    def masks_of(f: int) -> tuple[np.ndarray, list[np.ndarray], float]:
        """Keyframe f's image, its masks (from the cloud's depth there) and the seconds they took."""
        ta = time.perf_counter()
        img = np.asarray(images[f])
        H, W = img.shape[:2]
        s = min(1.0, st.max_side / max(H, W))
        dsize = (max(8, round(W * s)), max(8, round(H * s)))
        Kd = scale_intrinsics(cams.intrinsics[f], cams.image_size, dsize)
        depth = render_depth(scene.points, Kd, cams.world_from_camera[f], dsize, None, spacing=spacing)
        if dsize != (W, H):
            import cv2

            depth = cv2.resize(depth, (W, H), interpolation=cv2.INTER_NEAREST)
        K_img = scale_intrinsics(cams.intrinsics[f], cams.image_size, (W, H))
        return img, segmenter.segment(img, depth, K_img), time.perf_counter() - ta

    t_masks = t_describe = 0.0  # the segments stage's two parts (summed per keyframe, they overlap)
    ctx.progress("semantics: segments", 0, M)
    # The next keyframe's masks are made in a second thread while this one's are described: the segmenter is
    # mostly one thread and the encoder does not keep both cores busy, so the two overlap (same results).
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(masks_of, 0) if M else None
        for f in range(M):
            ctx.check_cancel()
            img, masks, took = ahead.result()
            ahead = pool.submit(masks_of, f + 1) if f + 1 < M else None
            frame_masks.append(masks)
            tb = time.perf_counter()
            if describe is not None:
                frame_desc.append(describe(f, img, masks))
            elif encoder is not None:
                frame_desc.append(pooled_descriptors(img, masks, encoder, int(getattr(encoder, "size", st.crop_size)),
                                                     crop, st.pooling, st.pool_scale, st.pool_min_side,
                                                     st.pool_small_scale))
                if fd is not None:
                    frame_feats.append(fd.frame_features(img, masks, encoder))
            t_masks += took
            t_describe += time.perf_counter() - tb
            ctx.progress("semantics: segments", f + 1, M)
    t1 = time.perf_counter()
    ctx.progress("semantics: lifting", 0, 1)
    lift = lift_into_scene(scene, frame_masks, frame_desc if frame_desc else None,
                           getattr(encoder, "space_id", None), st.lift, spacing)
    ctx.progress("semantics: lifting", 1, 1)
    t2 = time.perf_counter()
    if capture is not None:
        capture.update(lift=lift, frame_features=frame_feats, describer=fd,
                       mean_descriptor=np.array(scene.segments.descriptor, copy=True))
    if fd is not None:
        ctx.progress("semantics: descriptors", 0, 1)
        inputs = fd.segment_inputs(scene, lift, frame_feats)
        if len(scene.segments):
            scene.segments.descriptor = fd.describe(inputs)
        if capture is not None:
            capture["segment_inputs"] = inputs
        ctx.progress("semantics: descriptors", 1, 1)
    meta: dict[str, Any] = scene.metadata
    cues = {}
    for name, weight in (("structure_cues", st.structure_weight), ("object_cues", st.object_weight)):
        if not (weight > 0 and len(scene.segments) and describe is None and encoder is not None):
            continue
        from .text_encoder import SPACE_ID, default_encoder

        if encoder.space_id != SPACE_ID:  # an open_clip space: its text tower is not loaded here
            cues[name] = {"weight": 0.0, "reason": f"no text encoder of {encoder.space_id!r} in the stage"}
        elif name == "structure_cues":
            from .structure_cues import StructureSettings, apply_structure_cues

            cue = StructureSettings(weight=weight, surfaces=st.structure_surfaces)
            cues[name] = apply_structure_cues(scene, default_encoder(), cue)
        else:
            from .object_cues import ObjectCueSettings, apply_object_cues

            cues[name] = apply_object_cues(scene, default_encoder(), ObjectCueSettings(weight=weight))
    models = dict(meta.get("models") or {})
    models["segmenter"] = getattr(segmenter, "name", type(segmenter).__name__)
    if getattr(segmenter, "model_type", None):  # SAM: vit_b / vit_l / vit_h, or vit_t (MobileSAM)
        models["segmenter_model"] = segmenter.model_type
    if encoder is not None:
        models["image_encoder"] = {"kind": st.encoder, "class": type(encoder).__name__, "space": encoder.space_id,
                                   "crop": crop, "precision": getattr(encoder, "precision", "fp32"),
                                   "pooling": st.pooling if getattr(encoder, "pools_regions", False) else "crop"}
        if models["image_encoder"]["pooling"] != "crop":
            models["image_encoder"].update(pool_scale=st.pool_scale, pool_min_side=st.pool_min_side,
                                           pool_small_scale=st.pool_small_scale)
        scale, bias = getattr(encoder, "logit_scale", None), getattr(encoder, "logit_bias", None)
        if scale:  # sigmoid(scale * cos + bias) = 0.5: the encoder's own label threshold
            models["image_encoder"]["threshold"] = float(-bias / scale)
    if fd is not None:
        models["descriptor"] = fd.metadata(use_points=True, used_dino=fd.dino is not None)
    else:
        models["descriptor"] = {"kind": "mean", "reason": mean_reason}
        calibrated = (getattr(encoder, "metadata", None) or {}).get("other_threshold")
        if calibrated is not None:  # the encoder's threshold for its mean descriptors (core.bench.other_threshold)
            models["descriptor"]["other_threshold"] = float(calibrated)
    if (cues.get("object_cues") or {}).get("segments"):  # the cue lowers cosines: its own calibrated threshold
        from .object_cues import calibrated_threshold

        thr = calibrated_threshold(getattr(encoder, "weights_sha256", ""), st.object_weight)
        cues["object_cues"]["other_threshold"] = thr
        if thr is not None:
            models["descriptor"]["other_threshold"] = thr
    models.update(cues)
    meta["models"] = models
    meta.setdefault("timings", {}).update({"semantics.segments": t1 - t0, "semantics.segments.masks": t_masks,
                                          "semantics.segments.describe": t_describe, "semantics.lifting": t2 - t1,
                                          "semantics.descriptor": time.perf_counter() - t2})
    meta["segments"] = len(scene.segments)
    return scene
