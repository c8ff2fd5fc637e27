"""The shipped compact encoder weights load offline and classify held-out test-library crops above chance.

Fixture ``tests/data/compact_test_crops.npz`` (``python -m core.train.compact_eval --save-fixture``):
view 0 of the first test-library (BlendSwap-CC-0) model of each of the 8 most frequent test
classes, never seen in training; they are classified among every class of the test set.
"""

from pathlib import Path

import numpy as np

from core.models.compact import DEFAULT_WEIGHTS, ImageEncoder
from core.semantics.text_encoder import TextEncoder

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "compact_test_crops.npz"


def test_shipped_weights_small_and_safetensors():
    assert DEFAULT_WEIGHTS.exists(), "core/models/compact/weights/compact_v4.safetensors is not shipped"
    assert DEFAULT_WEIGHTS.stat().st_size < 30 * 2**20
    assert DEFAULT_WEIGHTS.read_bytes()[:8] != b"PK\x03\x04"  # not a (zip) pickle


def test_shipped_weights_classify_test_crops_above_chance():
    z = np.load(FIXTURE)
    enc = ImageEncoder.from_pretrained(device="cpu")
    assert enc.space_id == TextEncoder.space_id
    emb = enc.encode(z["crops"], z["masks"])
    assert emb.shape == (len(z["crops"]), 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    classes = [str(c) for c in z["classes"]]
    T = TextEncoder().encode_prompts(classes)
    pred = [classes[i] for i in (emb @ T.T).argmax(1)]
    correct = sum(p == str(t) for p, t in zip(pred, z["labels"]))
    chance = len(z["crops"]) / len(classes)  # expected hits by chance (~0.2 of 8)
    assert correct >= max(2, 4 * chance), (pred, list(z["labels"]))
