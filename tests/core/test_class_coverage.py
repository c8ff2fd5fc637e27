"""class_coverage: a run's mIoU split by the classes another room set has and by training data."""

import math

from ov3r.core.bench.class_coverage import coverage, markdown, room_set_classes


def _pc(iou, n, conf=None):
    return {"iou": iou, "acc": iou, "gt_count": n, "confused_with": conf}


def test_groups_split_the_mean_by_other_set_and_training_models():
    per_class = {"wall": _pc(0.8, 500), "chair": _pc(0.4, 100, "table"), "cup": _pc(0.0, 10, "table"),
                 "guitar": _pc(0.1, 20, "chair")}
    cov = coverage(per_class, other={"wall", "chair"}, train_models={"chair": 25, "cup": 3},
                   test_models={"chair": 11, "cup": 3, "guitar": 1},
                   ceiling={"wall": _pc(0.9, 500), "chair": _pc(0.7, 100), "cup": _pc(0.2, 10), "guitar": _pc(0.6, 20)})
    g = cov["groups"]
    assert math.isclose(g["in other"]["miou"], 0.6)
    assert math.isclose(g["not in other"]["miou"], 0.05)
    assert math.isclose(g["not in other"]["ceiling_miou"], 0.4)
    assert g["of structure"]["classes"] == ["wall"]
    assert g["with no training models"]["classes"] == ["guitar"]
    assert g["with 1-4 training models"]["classes"] == ["cup"]
    assert g["with 5 or more training models"]["classes"] == ["chair"]
    assert [r["class"] for r in cov["rows"]] == ["wall", "chair", "guitar", "cup"]  # by GT share
    text = markdown(cov, "heldout")
    assert "| chair | 15.9 | 40.0 | 70.0 | table | 25 | 11 | yes |" in text
    assert "classes not in heldout: 5.0 (oracle descriptors: 40.0)" in text


def test_room_set_classes_come_from_the_layouts():
    """The validation and test rooms' classes, from their layouts (the held-out set needs
    `make validation-furniture`, which CI does not run)."""
    val = room_set_classes("validation")
    suite = room_set_classes("suite")
    assert {"wall", "floor", "ceiling", "door", "window", "sofa", "chair"} <= val & suite
    assert "guitar" in suite and "guitar" not in val  # no training-library model is a guitar
    assert "bathtub" in val and "bathtub" not in suite  # no test-library model is a bathtub
