"""2D segmenters: classical (colour + depth) on synthetic images, SAM through a local checkpoint."""

import numpy as np
import pytest
from ov3r.core.semantics.masks import best_iou, drop_parts, labels_to_masks, masks_to_labels, mean_best_iou
from ov3r.core.semantics.projection import normals_from_depth
from ov3r.core.semantics.segment_classical import ClassicalSegmenter

COLORS = [[180, 170, 150], [120, 90, 60], [60, 90, 160], [170, 60, 60]]


def synthetic_image(seed=0, H=120, W=160, colors=COLORS):
    """Textured image with 4 regions + a depth map (wall plane, floor plane, two boxes in front)."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((H, W), np.int64)
    gt[80:, :] = 1  # floor
    gt[30:95, 20:70] = 2  # box A
    yy, xx = np.mgrid[0:H, 0:W]
    gt[((yy - 60) / 28) ** 2 + ((xx - 115) / 30) ** 2 < 1] = 3  # round object
    colors = np.array(colors, np.float64)
    img = colors[gt] + rng.normal(0, 6, (H, W, 3)) + (xx[..., None] / W) * 15  # noise + shading
    depth = np.full((H, W), 4.0)
    depth[gt == 1] = 4.0 - (yy[gt == 1] - 80) / 40 * 1.5  # floor comes closer at the bottom
    depth[gt == 2] = 2.5
    depth[gt == 3] = 2.0 + 0.002 * xx[gt == 3]
    return np.clip(img, 0, 255).astype(np.uint8), depth.astype(np.float32), gt


def test_mask_helpers_roundtrip():
    lab = np.array([[0, 0, 1], [2, 2, -1]])
    masks = labels_to_masks(lab)
    assert [m.sum() for m in masks] == [2, 2, 1]
    assert (masks_to_labels(masks) >= 0).sum() == 5
    big = np.ones((2, 3), bool)
    small = np.zeros((2, 3), bool)
    small[0, 0] = True
    lm = masks_to_labels([big, small])
    assert lm[0, 0] == 1 and lm[1, 1] == 0  # smallest mask on top
    assert mean_best_iou(masks, lab + 1, ignore=(0,)) == pytest.approx(1.0)
    assert best_iou([], lab + 1) == {1: 0.0, 2: 0.0, 3: 0.0}


def test_drop_parts_keeps_whole_objects_in_the_partition():
    """SAM-style overlapping masks: a sofa, one of its cushions and a lamp that overlaps the sofa a
    little. The cushion (inside the sofa) goes, the lamp stays, and the partition keeps the sofa."""
    sofa = np.zeros((20, 30), bool)
    sofa[5:15, 2:20] = True
    cushion = np.zeros_like(sofa)
    cushion[6:10, 3:9] = True
    lamp = np.zeros_like(sofa)
    lamp[2:18, 18:26] = True  # 2 of its 8 columns overlap the sofa
    empty = np.zeros_like(sofa)
    kept = drop_parts([cushion, lamp, empty, sofa], cover=0.8)
    assert [m.sum() for m in kept] == [sofa.sum(), lamp.sum()]
    labels = masks_to_labels(kept)
    assert (labels[sofa & ~lamp] == 0).all() and (labels[lamp] == 1).all()
    # with the cushion kept, the smallest-wins partition would cut it out of the sofa
    assert (masks_to_labels([sofa, lamp, cushion])[cushion] == 2).all()
    assert len(drop_parts([cushion, sofa], cover=1.01)) == 2  # a cover above 1 keeps every mask


def test_normals_from_depth_of_a_plane():
    K = np.array([[100, 0, 40], [0, 100, 30], [0, 0, 1]], float)
    n = normals_from_depth(np.full((60, 80), 3.0, np.float32), K)
    assert np.allclose(n[5:-5, 5:-5], [0, 0, -1], atol=1e-4)


@pytest.mark.parametrize("use_depth", [False, True])
def test_classical_segments_synthetic_regions(use_depth):
    img, depth, gt = synthetic_image()
    K = np.array([[150, 0, 80], [0, 150, 60], [0, 0, 1]], float)
    seg = ClassicalSegmenter()
    masks = seg.segment(img, depth if use_depth else None, K)
    assert masks and all(m.shape == gt.shape and m.dtype == bool for m in masks)
    assert mean_best_iou(masks, gt, ignore=()) >= 0.85


def test_classical_depth_separates_same_colour_objects():
    # box A has the wall's colour: only depth tells them apart
    img, depth, gt = synthetic_image(seed=1, colors=[COLORS[0], COLORS[1], COLORS[0], COLORS[3]])
    K = np.array([[150, 0, 80], [0, 150, 60], [0, 0, 1]], float)
    with_depth = best_iou(ClassicalSegmenter().segment(img, depth, K), gt, ignore=())
    assert with_depth[2] >= 0.8 and with_depth[0] >= 0.7


# ----------------------------------------------------------------------------- SAM


def _tiny_sam():
    """A SAM with a 1-block, 32-wide image encoder (the real prompt encoder and mask decoder)."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    return Sam(
        image_encoder=ImageEncoderViT(depth=1, embed_dim=32, img_size=1024, mlp_ratio=2,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16,
                                      qkv_bias=True, use_rel_pos=False, global_attn_indexes=(), window_size=8,
                                      out_chans=256),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                     mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=1, embedding_dim=256, mlp_dim=256, num_heads=8), transformer_dim=256, iou_head_depth=1,
            iou_head_hidden_dim=32),
    ).eval()


def test_sam_vit_b_loads_local_checkpoint(tmp_path):
    import torch
    from ov3r.core.semantics.segment_sam import load_sam
    from segment_anything import sam_model_registry

    torch.manual_seed(1)
    with torch.device("meta"):  # shapes only; random values below (fast)
        shapes = {k: v.shape for k, v in sam_model_registry["vit_b"]().state_dict().items()}
    ref = {k: torch.linspace(-0.02, 0.02, s.numel()).reshape(s) for k, s in shapes.items()}
    path = tmp_path / "sam_vit_b_random.pth"
    torch.save(ref, path)
    model = load_sam(path, "vit_b", device="cpu")
    sd = model.state_dict()
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
    assert not any(b.is_meta for b in model.buffers()) and not any(p.is_meta for p in model.parameters())
    bogus = tmp_path / "bogus.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1)}, bogus)
    with pytest.raises(ValueError, match="not a SAM vit_b"):
        load_sam(bogus, "vit_b", device="cpu")
    with pytest.raises(FileNotFoundError):
        load_sam(tmp_path / "missing.pth", "vit_b")


def test_sam_segmenter_interface():
    from ov3r.core.semantics.segment_sam import SamSegmenter, SamSettings

    st = SamSettings(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_area=0.0)
    seg = SamSegmenter(settings=st, model=_tiny_sam())
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 255
    masks = seg.segment(img)
    assert all(m.shape == (64, 64) and m.dtype == bool for m in masks)
    areas = [int(m.sum()) for m in masks]
    assert areas == sorted(areas, reverse=True)
