"""The lifting study re-lifts what the semantics stage recorded: the defaults reproduce the stage's segments."""

import numpy as np
import pytest

from ov3r.core.bench.lift_study import captured_lifting, relift
from ov3r.core.jobs import JobContext
from ov3r.core.semantics import lifting
from ov3r.core.semantics.stage import run_semantics

from semantics_synthetic import box_scene, render_instances


class ColourEncoder:
    space_id, dim = "rgb", 3

    def encode(self, crops, masks):
        return np.stack([c[m].mean(0) + 1 if m.any() else np.ones(3) for c, m in zip(crops, masks)])


def test_relift_reproduces_the_stage_and_applies_a_variant():
    scene, inst = box_scene(size=(128, 96), step=0.02)
    images = [scene.colors[render_instances(scene, np.arange(len(scene)), f)] for f in range(len(scene.cameras))]
    original = lifting.lift_into_scene
    with captured_lifting() as calls:
        run_semantics(scene, images, JobContext(), encoder=ColourEncoder())
    assert lifting.lift_into_scene is original and len(calls) == 1
    assert calls[0]["scene"].segment_id is None or (calls[0]["scene"].segment_id < 0).all()  # recorded before lifting

    again = relift(calls[0], {})
    assert np.array_equal(again.segment_id, scene.segment_id)
    assert np.allclose(again.segments.descriptor, scene.segments.descriptor)
    # no merging at all: every mask its own group, so at least as many segments, the boxes split across views
    split = relift(calls[0], {"merge_iou": 1.01, "segment_merge_cos": 1.0})
    assert len(split.segments) > len(scene.segments)
    with pytest.raises(ValueError, match="LiftSettings"):
        relift(calls[0], {"merge_iuo": 0.4})
