"""Semantics on a rendered benchmark room (GT cloud + GT cameras + the video's frames) with the
shipped compact encoder: "sofa" selects the sofas' points, "couch" ranks the same segment first.

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


# Issue 4's acceptance check, not met yet: with compact_v1 (30% zero-shot) the sofa query on
# test_living gave precision 0.63 but recall 0.07; compact_v2 (33%) still misses the sofa on the
# real scan (precision and recall 0); compact_v3 + the ovs_v3 fusion reach sofa IoU 24 % on the
# whole suite, still short here. Kept running so an improved encoder shows up as XPASS;
# remove the mark when it passes.
@pytest.mark.xfail(reason="issue 4 open: the compact encoder's sofa recall is < 0.5", strict=False)
def test_sofa_query_precision_recall_and_synonym():
    from ov3r.core.semantics.eval_scene import evaluate

    out = evaluate(_living(), frames=20, points=150_000, encoder_kind="compact", threshold=None)
    q = out["queries"]
    assert "sofa" in q, sorted(q)
    assert q["sofa"]["precision"] >= 0.5 and q["sofa"]["recall"] >= 0.5, q["sofa"]
    assert q["sofa"]["synonym_same_top"]
    assert np.isfinite(out["semantic"]["miou"])
