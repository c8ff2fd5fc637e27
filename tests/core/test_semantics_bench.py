"""Semantics on a rendered benchmark room (GT cloud + GT cameras + the video's frames) with the
shipped compact encoder and the stage's default segment descriptor: "chair" and "sofa" select their
points, "couch" ranks like "sofa".

The room is ``test_living`` at the benchmark's 640x480, as a 20-frame walk (the evaluation's 20
keyframes), rendered here on first use and cached by its config hash (~4 min on 2 cores, then
~40 s of semantics), so CI runs it. Other renders of the same room score differently: on the
150-frame benchmark render "chair" at the threshold has precision 0.39 (a bookcase segment passes),
on a 320x240 one 0.36, and this very render config gives 0.46 on an Intel Xeon machine (0.81 on
AMD EPYC): the chair's precision at the threshold is its own non-strict xfail (docs/experiments/history.md,
"The acceptance room" and "Descriptors centred by a calibration mean").
"""

import numpy as np
import pytest
from ov3r.core.scenegen.suite import cached_scene, test_suite
from ov3r.core.semantics.stage import compact_weights_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not compact_weights_available(), reason="compact encoder weights not trained yet"),
]


def _living():
    return cached_scene(test_suite(frames=20)[0])


@pytest.fixture(scope="module")
def living_eval():
    from ov3r.core.bench.eval_scene import evaluate

    return evaluate(_living(), frames=20, points=150_000, encoder_kind="compact", threshold=None)


def test_query_selects_a_present_class_and_couch_ranks_like_sofa(living_eval):
    """The semantics acceptance check with the shipped defaults (compact_v8 = compact_v4 + compact_v7 averaged,
    plain averaged segment descriptors, masks pooled from two backbone passes per keyframe, the floor's
    structure cue), on what the add-on selects: every segment scoring at or above the threshold the scene
    records (calibrated on the validation rooms, never on test rooms). "sofa" selects its points with
    precision and recall >= 0.5, "chair" with recall >= 0.5 (its precision:
    test_chair_precision_at_threshold, machine-dependent), "floor" with both >= 0.8, and "couch" ranks
    the sofa's segments like "sofa": its best segment is mostly sofa and both rank the same three
    segments first (the sofa's two best segments can score within 0.001 of each other, so which of
    them comes first is a near-tie)."""
    q = living_eval["queries"]
    assert "chair" in q and "sofa" in q, sorted(q)
    t = q["sofa"]["at_threshold"]
    assert t["precision"] >= 0.5 and t["recall"] >= 0.5, ("sofa", t)
    assert q["chair"]["at_threshold"]["recall"] >= 0.5, q["chair"]["at_threshold"]
    f = q["floor"]["at_threshold"]
    assert f["precision"] >= 0.8 and f["recall"] >= 0.8, ("floor", f)
    assert q["sofa"]["synonym_top_is_class"] and q["sofa"]["synonym_same_top3"], q["sofa"]
    assert np.isfinite(living_eval["semantic"]["miou"])


# Not met on every machine: the chair's precision at the recorded threshold. The same 20-frame render
# config gives 0.81 on the AMD EPYC machines and 0.46 on an Intel Xeon one
# (2026-12-02: a bookcase segment scores >= 0.52 for "chair"; the render and the encoder's bf16 path
# differ by CPU), as other renders of the room did before (docs/experiments/history.md, "The acceptance room").
# Kept running so a robust fix shows up as XPASS everywhere.
@pytest.mark.xfail(reason="chair precision at the threshold depends on the render / CPU", strict=False)
def test_chair_precision_at_threshold(living_eval):
    t = living_eval["queries"]["chair"]["at_threshold"]
    assert t["precision"] >= 0.5, t


def test_margin_rule_ranks_the_chairs_first(living_eval):
    """The evaluation's ranking rule (segments within 0.05 of the best score, no threshold): the
    chairs' segments lead "chair" (precision and recall >= 0.5) and the sofa's best segment leads "sofa"."""
    q = living_eval["queries"]
    assert q["chair"]["precision"] >= 0.5 and q["chair"]["recall"] >= 0.5, q["chair"]
    assert q["sofa"]["precision"] >= 0.5, q["sofa"]


def test_queries_also_report_the_add_ons_threshold_selection(living_eval):
    """Each query row also scores the add-on's selection: every segment at or above the threshold the
    scene records (the default encoder's calibrated one), not the closed-vocabulary -1 of the labels."""
    from ov3r.core.models.compact import ImageEncoder

    thr = float(ImageEncoder.from_pretrained(device="cpu").metadata["other_threshold"])
    for name, row in living_eval["queries"].items():
        t = row["at_threshold"]
        assert t["threshold"] == pytest.approx(thr), name
        assert 0.0 <= t["precision"] <= 1.0 and 0.0 <= t["recall"] <= 1.0, name


# Not met under the margin rule (the threshold rule above meets it): the sofa's recall. compact_v1:
# precision 0.63, recall 0.07; compact_v2 missed the sofa; compact_v4 (+ plain averaging) 0.92 / 0.25:
# the sofa's other segments score a little lower than its best one (they are also "armchair" or
# "chair"); compact_v8 (the default) 0.91 / 0.38. Kept running so an improved encoder shows up as XPASS.
@pytest.mark.xfail(reason="under the margin rule the sofa's recall is < 0.5", strict=False)
def test_sofa_recall(living_eval):
    assert living_eval["queries"]["sofa"]["recall"] >= 0.5, living_eval["queries"]["sofa"]
