"""Semantic metrics against hand-computed answers."""

import math

import numpy as np

from core.bench.semantic_metrics import confusion_matrix, semantic_scores, thirds_by_frequency, transfer_labels


def test_transfer_labels_majority_and_tie_break():
    pred = np.c_[np.arange(10.0), np.zeros(10), np.zeros(10)]
    labels = np.array([1, 2, 2, 1, 3, 4, 4, 4, 5, 5])
    gt = np.array([[0.1, 0, 0], [9.0, 0, 0]])
    # first: 5-NN labels [1,2,2,1,3]: 1 and 2 tie with 2 votes, the nearest (x=0) has 1
    # second: 5-NN labels [5,5,4,4,4]: 4 wins with 3 votes
    assert transfer_labels(gt, pred, labels).tolist() == [1, 4]
    assert transfer_labels(gt, pred[:2], labels[:2], k=5).tolist() == [1, 2]  # k clipped to 2, tie -> nearest
    assert transfer_labels(gt, np.zeros((0, 3)), np.zeros(0)).tolist() == [-1, -1]


def test_confusion_and_scores_by_hand():
    gt = np.array([1, 1, 1, 2, 2, 3, 0])
    pr = np.array([1, 1, 2, 2, 2, 1, 3])
    conf = confusion_matrix(gt, pr, 4)
    expected = np.zeros((4, 4), int)
    expected[1, 1], expected[1, 2], expected[2, 2], expected[3, 1] = 2, 1, 2, 1
    assert np.array_equal(conf, expected)  # the unlabeled GT point is ignored
    s = semantic_scores(conf, ["unlabeled", "a", "b", "c"])
    # IoU: a = 2/(2+1+1), b = 2/(2+1+0), c = 0/(0+0+1); Acc: 2/3, 1, 0
    assert math.isclose(s["per_class"]["a"]["iou"], 0.5)
    assert math.isclose(s["per_class"]["b"]["iou"], 2 / 3)
    assert s["per_class"]["c"]["iou"] == 0.0
    assert math.isclose(s["miou"], (0.5 + 2 / 3) / 3)
    assert math.isclose(s["macc"], (2 / 3 + 1) / 3)
    assert math.isclose(s["fmiou"], (3 * 0.5 + 2 * 2 / 3) / 6)
    assert s["num_present"] == 3 and "unlabeled" not in s["per_class"]
    # where each class's wrong points went: a's third to b, c's only point to a, b has none wrong
    assert s["per_class"]["a"]["confused_with"] == "b" and math.isclose(s["per_class"]["a"]["confused_share"], 1 / 3)
    assert s["per_class"]["c"]["confused_with"] == "a" and s["per_class"]["c"]["confused_share"] == 1.0
    assert s["per_class"]["b"]["confused_with"] is None and s["per_class"]["b"]["confused_share"] == 0.0
    assert s["groups"] == {"head": ["a"], "common": ["b"], "tail": ["c"]}
    assert math.isclose(s["head_miou"], 0.5) and math.isclose(s["common_miou"], 2 / 3) and s["tail_miou"] == 0
    # an explicit frequency order regroups
    s2 = semantic_scores(conf, ["unlabeled", "a", "b", "c"], frequency_order=["c", "b", "a"])
    assert s2["groups"] == {"head": ["c"], "common": ["b"], "tail": ["a"]}


def test_confusion_sums_over_scenes_and_invalid_predictions_are_misses():
    c1 = confusion_matrix([1, 2], [1, -1], 3)
    c2 = confusion_matrix([2, 2], [2, 7], 3)
    conf = c1 + c2
    assert conf[1, 1] == 1 and conf[2, 0] == 2 and conf[2, 2] == 1
    s = semantic_scores(conf)
    assert math.isclose(s["per_class"]["2"]["iou"], 1 / 3) and math.isclose(s["per_class"]["2"]["acc"], 1 / 3)


def test_thirds():
    counts = np.array([0, 50, 40, 30, 20, 10, 5, 1])
    g = thirds_by_frequency(list(range(1, 8)), counts)
    assert g == {"head": [1, 2, 3], "common": [4, 5], "tail": [6, 7]}
