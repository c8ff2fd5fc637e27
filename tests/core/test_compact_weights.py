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
    assert DEFAULT_WEIGHTS.exists(), f"{DEFAULT_WEIGHTS} is not shipped"
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


def test_default_is_the_ensemble_of_compact_v4_and_compact_v7():
    """compact_v8 (the default) is ``merge`` of compact_v4 (shipped beside it, for the fusion) and
    compact_v7 (retired as a file: its weights live on inside compact_v8); the first member's
    weights are compact_v4's, bit for bit."""
    import json

    import torch

    from core.hashing import file_sha256
    from core.models.shipped import COMPACT_FOR_FUSION, RETIRED

    enc = ImageEncoder.from_pretrained(device="cpu")
    assert enc.net.cfg.backbone == "ensemble"
    members = json.loads(enc.metadata["members"])
    assert [m["file"] for m in members] == ["compact_v4.safetensors", "compact_v7.safetensors"]
    assert members[0]["sha256"] == file_sha256(COMPACT_FOR_FUSION)
    assert members[1]["sha256"] == RETIRED["compact_v7.safetensors"].sha256
    assert all(m["backbone_sha256"] for m in members)  # each member's frozen backbone is pinned
    v4 = ImageEncoder.from_pretrained(COMPACT_FOR_FUSION, device="cpu").net.state_dict()
    inside = enc.net.members[0].state_dict()
    assert v4.keys() == inside.keys() and all(torch.equal(v4[k], inside[k]) for k in v4)


def test_bf16_precision_stays_close_to_fp32_and_auto_resolves():
    """The semantics stage runs the encoder with precision "auto" (bf16 autocast where the CPU has
    fast bf16): the embeddings stay within cosine 0.98 of fp32 and name the same classes."""
    from core.precision import cpu_has_fast_bf16

    z = np.load(FIXTURE)
    fp32 = ImageEncoder.from_pretrained(device="cpu")
    bf16 = ImageEncoder.from_pretrained(device="cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    a, b = fp32.encode(z["crops"], z["masks"]), bf16.encode(z["crops"], z["masks"])
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert (a * b).sum(1).min() > 0.98
    assert np.abs(a - b).max() > 0  # it did run in bf16
    T = TextEncoder().encode_prompts([str(c) for c in z["classes"]])
    assert ((a @ T.T).argmax(1) == (b @ T.T).argmax(1)).mean() >= 0.75
    auto = ImageEncoder.from_pretrained(device="cpu", precision="auto")
    assert auto.precision == ("bf16" if cpu_has_fast_bf16() else "fp32")
