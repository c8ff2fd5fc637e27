"""The class-by-class comparison of two bench runs: shared classes, classes only one run has, and
each group's mIoU, from confusion matrices worked by hand."""

import math

import numpy as np
from core.bench.per_class import compare, markdown
from core.bench.semantic_metrics import semantic_scores

NAMES = ["unlabeled", "wall", "sofa", "lamp"]


def _run(conf):
    return semantic_scores(np.array(conf, float), NAMES)


def test_shared_and_only_classes_and_their_mious():
    # run A: wall and sofa present (wall all right; sofa half taken by wall)
    a = _run([[0, 0, 0, 0], [0, 4, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0]])
    # run B: wall and lamp present (lamp all taken by wall)
    b = _run([[0, 0, 0, 0], [0, 6, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0]])
    cmp = compare(a, b)
    assert cmp["shared"] == ["wall"] and cmp["only_a"] == ["sofa"] and cmp["only_b"] == ["lamp"]
    m = cmp["miou"]
    assert math.isclose(m["a_shared"], 4 / 6) and math.isclose(m["b_shared"], 6 / 8)
    assert math.isclose(m["a_only"], 0.5) and m["b_only"] == 0.0
    assert math.isclose(m["a_all"], (4 / 6 + 0.5) / 2) and math.isclose(m["b_all"], 6 / 8 / 2)
    rows = {r["class"]: r for r in cmp["rows"]}
    assert math.isclose(rows["lamp"]["share_b"], 0.25) and rows["lamp"]["iou_a"] is None
    assert rows["lamp"]["confused_b"] == "wall" and rows["sofa"]["confused_a"] == "wall"
    assert [r["class"] for r in cmp["rows"]] == ["wall", "lamp", "sofa"]  # by B's share, then A's
    table = markdown(cmp, ("held-out", "test"))
    assert "| lamp |  |  |  | 25.0 | 0.0 | wall |" in table
    assert "1 classes both have: held-out 66.7, test 75.0" in table
