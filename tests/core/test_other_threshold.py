"""The "other" threshold calibration (core.bench.other_threshold) and the validation rooms it uses."""

import pytest
import numpy as np
from ov3r.core.bench.other_threshold import RoomSegmentsGT, balanced_accuracy, best_threshold
from ov3r.core.scenegen.splits import TEST_LIBRARIES


def _room(rng, T=10, S=40):
    """Segments whose own class scores 0.6-0.8 and every other class 0.1-0.4: 0.5 separates them."""
    gt = rng.integers(-1, T, S)
    scores = rng.uniform(0.1, 0.4, (T, S))
    lab = gt >= 0
    scores[gt[lab], np.flatnonzero(lab)] = rng.uniform(0.6, 0.8, lab.sum())
    return RoomSegmentsGT(scores, gt, rng.integers(50, 500, S).astype(float), "ovs_fusion")


def test_separable_scores_calibrate_between_the_levels():
    rng = np.random.default_rng(0)
    rooms = [_room(rng) for _ in range(3)]
    curve = balanced_accuracy(rooms, np.round(np.arange(0, 1.0001, 0.01), 2), trials=50)
    thr = best_threshold(curve)
    assert 0.4 <= thr <= 0.6, thr
    i = int(np.argmin(np.abs(curve["threshold"] - thr)))
    assert curve["in_vocab"][i] == 1.0 and curve["out_vocab"][i] == 1.0
    # the extremes fail one side: everything "other", or nothing
    assert curve["in_vocab"][-1] == 0.0 and curve["out_vocab"][0] == 0.0
    # a room whose scores are shifted up calibrates higher
    for r in rooms:
        r.scores = r.scores + 0.15
    assert best_threshold(balanced_accuracy(rooms, curve["threshold"], trials=50)) > thr


def test_validation_rooms_are_not_training_or_test_rooms():
    from ov3r.core.scenegen.suite import training_configs, validation_configs

    val = validation_configs(3)
    assert len(val) == 3 and all(c.name.startswith("val_") for c in val) and len({c.name for c in val}) == 3
    assert all(not set(c.libraries) & set(TEST_LIBRARIES) for c in val)
    train_seeds = {c.seed for c in training_configs(40)}
    assert not {c.seed for c in val} & train_seeds


def test_query_selection_precision_and_recall():
    from ov3r.core.bench.other_threshold import query_selection

    # two segments of class 0 (100 and 50 points; 30 more class-0 points unsegmented), one of class 1
    counts = np.array([[100.0, 0.0], [40.0, 10.0], [0.0, 300.0]])
    scores = np.array([[0.9, 0.6, 0.2], [0.1, 0.3, 0.8]])
    r = RoomSegmentsGT(scores, np.array([0, 0, 1]), counts.sum(1), "ovs_fusion", counts, np.array([170.0, 310.0]))
    q = query_selection([r], np.array([0.5, 0.7]), min_points=100)
    assert int(q["queries"]) == 2
    # 0.5: class 0 selects segments 0+1 (P 140/150, R 140/170), class 1 segment 2 (P 1, R 300/310)
    np.testing.assert_allclose(q["precision"][0], (140 / 150 + 1) / 2)
    np.testing.assert_allclose(q["recall"][0], (140 / 170 + 300 / 310) / 2)
    # 0.7: class 0 only segment 0
    np.testing.assert_allclose(q["recall"][1], (100 / 170 + 300 / 310) / 2)


def test_a_threshold_for_mean_descriptors_goes_into_the_image_encoder_weights(tmp_path, monkeypatch):
    """Plain averaged scenes get their calibrated threshold from the compact encoder's metadata."""
    import shutil

    from ov3r.core.bench.other_threshold import _calibrated_weights, write_threshold
    from ov3r.core.models.compact.encoder import DEFAULT_WEIGHTS, ImageEncoder

    monkeypatch.delenv("OV3R_COMPACT_WEIGHTS", raising=False)
    assert _calibrated_weights(["mean"], tmp_path / "ovs.safetensors") == DEFAULT_WEIGHTS
    assert _calibrated_weights(["ovs_fusion"], tmp_path / "ovs.safetensors") == tmp_path / "ovs.safetensors"
    with pytest.raises(SystemExit):
        _calibrated_weights(["mean", "ovs_fusion"], None)
    copy = tmp_path / "compact.safetensors"
    shutil.copy(DEFAULT_WEIGHTS, copy)
    monkeypatch.setenv("OV3R_COMPACT_WEIGHTS", str(copy))
    assert _calibrated_weights(["mean"], None) == copy
    write_threshold(copy, 0.66, {"rooms": 0})
    assert ImageEncoder.from_pretrained(copy, device="cpu").metadata["other_threshold"] == "0.6600"
