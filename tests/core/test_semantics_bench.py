"""Semantics on a rendered benchmark room (GT cloud + GT cameras + the video's frames) with the
shipped compact encoder and the stage's default segment descriptor: "chair" selects the chairs' points,
"couch" ranks like "sofa".

Needs the compact weights and an already rendered ``test_living`` (full size, or the small
variant: ``python -m core.bench.suite --only test_living --width 320 --height 240 --frames 60``);
skipped otherwise (a render takes minutes to tens of minutes).
"""

import numpy as np
import pytest
from ov3r.core.bench.suite import scene_dir, test_suite
from ov3r.core.semantics.stage import compact_weights_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not compact_weights_available(), reason="compact encoder weights not trained yet"),
]


def _living():
    for cfg in (test_suite(width=320, height=240, frames=60)[0], test_suite()[0]):
        d = scene_dir(cfg)
        if (d / "scene.json").exists():
            return d
    pytest.skip("test_living is not rendered (python -m core.bench.suite --only test_living ...)")


@pytest.fixture(scope="module")
def living_eval():
    from ov3r.core.semantics.eval_scene import evaluate

    return evaluate(_living(), frames=20, points=150_000, encoder_kind="compact", threshold=None)


def test_query_selects_a_present_class_and_couch_ranks_like_sofa(living_eval):
    """Issue 4's acceptance check with the shipped defaults (compact_v8 = compact_v4 + compact_v7 averaged,
    plain averaged segment descriptors, context crops): "chair"
    selects the chairs' points with precision and recall >= 0.5; "sofa" selects sofa points
    (precision >= 0.5) and "couch" ranks the same segment first."""
    q = living_eval["queries"]
    assert "chair" in q and "sofa" in q, sorted(q)
    assert q["chair"]["precision"] >= 0.5 and q["chair"]["recall"] >= 0.5, q["chair"]
    assert q["sofa"]["precision"] >= 0.5, q["sofa"]
    assert q["sofa"]["synonym_same_top"]
    assert np.isfinite(living_eval["semantic"]["miou"])


def test_queries_also_report_the_add_ons_threshold_selection(living_eval):
    """Each query row also scores the add-on's selection: every segment at or above the threshold the
    scene records (the default encoder's calibrated one), not the closed-vocabulary -1 of the labels."""
    from ov3r.core.models.compact import ImageEncoder

    thr = float(ImageEncoder.from_pretrained(device="cpu").metadata["other_threshold"])
    for name, row in living_eval["queries"].items():
        t = row["at_threshold"]
        assert t["threshold"] == pytest.approx(thr), name
        assert 0.0 <= t["precision"] <= 1.0 and 0.0 <= t["recall"] <= 1.0, name


# Not met yet: the sofa's recall. compact_v1: precision 0.63, recall 0.07; compact_v2 missed the
# sofa; compact_v4 (+ plain averaging) 0.92 / 0.25: the sofa's other segments are labelled
# armchair or chair; compact_v8 (the default) 0.92 / 0.31. compact_v7 alone reaches 0.90 / 0.78
# but fails the chair's precision above. Kept running so an improved encoder shows up as XPASS.
@pytest.mark.xfail(reason="issue 4 open: the sofa's recall is < 0.5", strict=False)
def test_sofa_recall(living_eval):
    assert living_eval["queries"]["sofa"]["recall"] >= 0.5, living_eval["queries"]["sofa"]
