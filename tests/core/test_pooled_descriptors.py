"""Mask descriptors from one backbone pass per image (``descriptors.pooled_descriptors``).

The shipped compact_v8 weights, real held-out crops (``tests/data/compact_test_crops.npz``, as
``test_compact_weights.py``): pooling a whole image's feature maps inside a mask must give what the
crop path gives when the image is the crop, and must still name objects laid out side by side in
one image.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from core.models.compact import ImageEncoder
from core.models.compact.preprocess import preprocess
from core.semantics.descriptors import mask_descriptors, pooled_descriptors
from core.semantics.text_encoder import TextEncoder

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "compact_test_crops.npz"


@pytest.fixture(scope="module")
def encoder():
    return ImageEncoder.from_pretrained(device="cpu", precision="fp32")


def test_one_pass_pooling_is_the_crop_path_when_the_image_is_the_crop(encoder):
    rng = np.random.default_rng(0)
    for member in encoder.net.members:  # the COCO CenterNet member at 160 px, the ImageNet one at 256 px
        S = member.cfg.size
        img = (rng.random((S, S, 3)) * 255).astype(np.uint8)
        mask = np.zeros((S, S), bool)
        mask[S // 4:3 * S // 4, S // 3:S - 10] = True
        with torch.no_grad():
            crop = member(preprocess(img[None], mask[None], S))
            rgb = torch.from_numpy(img).permute(2, 0, 1)[None].float()
            pooled = member.regions(rgb, torch.from_numpy(mask.astype(np.float32))[None, None],
                                    torch.ones(1, 1, S, S), 1.0)
        assert float((crop * pooled).sum()) > 0.9999, type(member).__name__


def _mosaic(z, cell=128):
    """The 8 fixture crops (64 px) upscaled into a 2 x 4 grid: one (2*cell, 4*cell, 3) image + 8 masks."""
    import cv2

    img = np.full((2 * cell, 4 * cell, 3), 127, np.uint8)
    masks = []
    for k, (c, m) in enumerate(zip(z["crops"], z["masks"])):
        y, x = (k // 4) * cell, (k % 4) * cell
        img[y:y + cell, x:x + cell] = cv2.resize(c, (cell, cell), interpolation=cv2.INTER_LINEAR)
        full = np.zeros(img.shape[:2], bool)
        full[y:y + cell, x:x + cell] = cv2.resize(m.astype(np.uint8), (cell, cell), interpolation=cv2.INTER_NEAREST) > 0
        masks.append(full)
    return img, masks


def test_one_pass_names_objects_side_by_side(encoder):
    z = np.load(FIXTURE)
    img, masks = _mosaic(z)
    classes = [str(c) for c in z["classes"]]
    T = TextEncoder().encode_prompts(classes)
    d = pooled_descriptors(img, masks, encoder, encoder.size, "context", "dense", scale=2.5)
    assert d.shape == (8, 384)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-4)
    pred = [classes[i] for i in (d @ T.T).argmax(1)]
    correct = sum(p == str(t) for p, t in zip(pred, z["labels"]))
    chance = len(masks) / len(classes)
    assert correct >= max(2, 4 * chance), (pred, list(z["labels"]))
    # each object's pooled descriptor is nearer its own crop descriptor than the other objects'
    c = mask_descriptors(img, masks, encoder, encoder.size, "context")
    assert (np.argmax(d @ c.T, axis=1) == np.arange(8)).mean() >= 0.75


def test_hybrid_crops_the_small_masks_and_pools_the_large(encoder):
    z = np.load(FIXTURE)
    img, masks = _mosaic(z)
    masks = masks[:2] + [np.zeros_like(masks[0])]
    masks[2][:, :] = True  # the whole image: a crop side of 1.5 long sides
    crop = mask_descriptors(img, masks, encoder, encoder.size, "context")
    np.testing.assert_allclose(pooled_descriptors(img, masks, encoder, encoder.size, "context", "crop"), crop)
    hyb = pooled_descriptors(img, masks, encoder, encoder.size, "context", "hybrid", min_side=1.0)
    np.testing.assert_allclose(hyb[:2], crop[:2], atol=1e-6)  # small: cropped
    dense = pooled_descriptors(img, masks, encoder, encoder.size, "context", "dense")
    np.testing.assert_allclose(hyb[2], dense[2], atol=1e-6)  # large: pooled
    assert float(hyb[2] @ crop[2]) < 0.9999
    # or the small ones pooled from a second pass at a larger scale
    two = pooled_descriptors(img, masks, encoder, encoder.size, "context", "hybrid", min_side=1.0, small_scale=4.0)
    np.testing.assert_allclose(two[:2], pooled_descriptors(img, masks[:2], encoder, encoder.size, "context",
                                                           "dense", scale=4.0), atol=1e-6)
    np.testing.assert_allclose(two[2], dense[2], atol=1e-6)
    with pytest.raises(ValueError, match="unknown pooling"):
        pooled_descriptors(img, masks, encoder, encoder.size, "context", "tiles")
