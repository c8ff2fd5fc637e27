"""Label All in the real bpy module: label_id per point, label colours and legend, segment
labels for proxies and exports, the default vocabulary, and an empty vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bpy
from ov3r.ov3r_addon import blend_storage, point_attrs, point_display, preferences, query_client, scan_labels
from test_workflow_common import LABELS, assert_unchanged, build, snapshot, use_stand_in

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)


@pytest.fixture(autouse=True)
def stand_in(registered_addon):
    use_stand_in()
    yield
    query_client.set_encoder_override(None)


def test_label_all_writes_label_id_colours_and_legend(tmp_path):
    obj = build()
    vocab = ["lamp", "sofa", "table", "chair", "floor", "bathtub"]
    obj.ov3r_scan.vocabulary = ", ".join(vocab)
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    label_id = point_attrs.read(obj.data, "label_id")
    seg = point_attrs.read(obj.data, "segment_id")
    assert obj.data.attributes["label_id"].data_type == "INT"
    for i, name in enumerate(LABELS):
        assert (label_id[seg == i] == vocab.index(name)).all()
    assert (label_id[seg < 0] == -1).all()
    legend = obj.ov3r_scan.legend
    assert [it.name for it in legend] == vocab
    assert [it.points for it in legend] == [200, 200, 200, 200, 200, 0]
    assert blend_storage.read_segments(obj).label == LABELS
    assert obj.ov3r_scan.display == "LABEL" and point_display.get_display(obj)[0] == 2
    # Colours: per label from the legend; editing a swatch recolours its points.
    col = point_attrs.read(obj.data, "label_color")
    assert np.allclose(col[label_id == 1, :3], legend[1].color)
    legend[1].color = (0.0, 1.0, 0.0)
    col = point_attrs.read(obj.data, "label_color")
    assert np.allclose(col[label_id == 1, :3], (0, 1, 0)) and np.allclose(col[label_id == -1, :3], 0.05)
    # Survives save + reopen.
    path = tmp_path / "étiquettes.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects["salon points"]
    assert scan_labels.label_names(obj) == vocab and obj.ov3r_scan.legend[1].color[:] == pytest.approx((0, 1, 0))


def test_label_threshold_leaves_weak_segments_unlabeled():
    obj = build()
    obj.ov3r_scan.vocabulary = "sofa, chair"
    obj.ov3r_scan.label_threshold = 0.95
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    label_id = point_attrs.read(obj.data, "label_id")
    seg = point_attrs.read(obj.data, "segment_id")
    assert (label_id[seg == 0] == 0).all() and (label_id[seg == 1] == 1).all()
    assert (label_id[seg >= 2] == -1).all()


def test_default_vocabulary():
    vocab = preferences.default_vocabulary()
    assert 20 <= len(vocab) <= 30 and "sofa" in vocab and "chair" in vocab
    assert preferences.parse_vocabulary(" chair, sofa ,, chair,\ntable ") == ["chair", "sofa", "table"]
    obj = build()
    assert bpy.ops.ov3r.vocabulary_reset() == {"FINISHED"}
    assert preferences.parse_vocabulary(obj.ov3r_scan.vocabulary) == vocab
    obj.ov3r_scan.vocabulary = ""
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}  # empty = the default list
    assert [it.name for it in obj.ov3r_scan.legend] == vocab


def test_empty_vocabulary_changes_nothing():
    obj = build()
    before = snapshot(obj)
    with pytest.raises(RuntimeError, match="vocabulary is empty"):
        bpy.ops.ov3r.label_all(vocabulary=" , ,", wait=True)
    assert_unchanged(before, snapshot(obj))


def test_thresholds_default_to_the_scenes_recorded_one():
    from test_workflow_common import room_scene

    scene = room_scene()
    scene.metadata["models"] = {"image_encoder": {"threshold": 0.42}}
    obj = build(scene)
    assert obj.ov3r_scan.threshold == pytest.approx(0.42) and obj.ov3r_scan.label_threshold == pytest.approx(0.42)
    assert build(room_scene(), "autre").ov3r_scan.threshold == pytest.approx(0.3)
    # a fused scene: the fusion's calibrated "other" threshold wins over the image encoder's
    fused = room_scene()
    fused.metadata["models"] = {"image_encoder": {"threshold": 0.42},
                                "descriptor": {"kind": "ovs_fusion", "other_threshold": 0.77}}
    obj = build(fused, "fused")
    assert obj.ov3r_scan.threshold == pytest.approx(0.77) and obj.ov3r_scan.label_threshold == pytest.approx(0.77)
