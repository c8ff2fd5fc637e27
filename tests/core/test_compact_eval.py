"""Zero-shot evaluation logic (a fake encoder that knows the answer scores 1, a constant one scores chance-like)."""

import numpy as np
import pytest

from core.semantics.text_encoder import TextEncoder
from core.train.compact_eval import evaluate


@pytest.fixture(scope="module")
def te():
    return TextEncoder()


def test_evaluate_perfect_and_constant(te):
    objects = [{"class": c} for c in ["chair", "sofa", "bed", None]]
    obj = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    rgba = np.zeros((8, 16, 16, 4), np.uint8)
    rgba[:, 4:12, 4:12] = 255
    T = te.encode_prompts(["chair", "sofa", "bed"])
    truth = np.stack([T[["chair", "sofa", "bed"].index(objects[o]["class"])] if objects[o]["class"] else T[0]
                      for o in obj])
    r = evaluate(None, te, rgba, obj, objects, emb=truth)
    assert r["classes"] == 3 and r["objects"] == 3 and r["views"] == 6
    assert r["view_top1"] == 1.0 and r["object_top1"] == 1.0 and abs(r["chance"] - 1 / 3) < 1e-9
    const = np.repeat(T[1:2], 8, 0)
    r2 = evaluate(None, te, rgba, obj, objects, emb=const)
    assert abs(r2["view_top1"] - 1 / 3) < 1e-9 and r2["per_class"]["sofa"]["object_acc"] == 1.0
