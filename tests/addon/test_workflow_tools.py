"""Isolate, one object per label, blocking proxies, align and real-world scale in the real
bpy module (on the small labelled room of test_workflow_common)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bpy
from ov3r.ov3r_addon import blend_storage, point_attrs, proxies, query_client, scan_labels
from test_workflow_common import CENTERS, EXTENTS, LABELS, assert_unchanged, build, snapshot, use_stand_in

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)


@pytest.fixture(autouse=True)
def stand_in(registered_addon):
    use_stand_in()
    yield
    query_client.set_encoder_override(None)


def _labelled():
    obj = build()
    obj.ov3r_scan.vocabulary = ", ".join(LABELS)
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    return obj


def test_isolate_copies_points_and_attributes(tmp_path):
    obj = _labelled()
    assert bpy.ops.ov3r.query_select(text="table", threshold=0.95, wait=True) == {"FINISHED"}
    mask = point_attrs.selection(obj.data)
    assert bpy.ops.ov3r.isolate() == {"FINISHED"}
    new = bpy.context.view_layer.objects.active
    assert new is not obj and new.name == "salon points [table]" and len(new.data.vertices) == mask.sum()
    for name in ("position", "color", "segment_id", "frame_id", "confidence", "label_id", "query_score",
                 "label_color"):
        a, b = point_attrs.read(obj.data, name), point_attrs.read(new.data, name)
        assert new.data.attributes[name].data_type == obj.data.attributes[name].data_type
        assert np.array_equal(a[mask], b), name
    assert new.modifiers and blend_storage.info(new)["point_count"] == mask.sum()
    # It is a scan itself: it can be queried again.
    assert blend_storage.scene_from_object(new).segments.label == LABELS
    assert bpy.ops.ov3r.query_select(text="table", threshold=0.95, wait=True) == {"FINISHED"}
    assert point_attrs.selection(new.data).all()


def test_isolate_without_query_or_match():
    obj = build()
    before = snapshot(obj)
    with pytest.raises(RuntimeError, match="Run a query first"):
        bpy.ops.ov3r.isolate()
    assert bpy.ops.ov3r.query_select(text="sofa", threshold=1.0, wait=True) == {"FINISHED"}
    before = snapshot(obj)
    obj.ov3r_scan["threshold"] = 1.0
    with pytest.raises(RuntimeError, match="No point matches"):
        bpy.ops.ov3r.isolate()
    assert_unchanged(before, snapshot(obj))


def test_one_object_per_label():
    obj = _labelled()
    assert bpy.ops.ov3r.split_labels() == {"FINISHED"}
    coll = bpy.data.collections[f"Ov3R labels {obj.name}"]
    assert sorted(o.name for o in coll.objects) == sorted(LABELS)
    assert all(len(o.data.vertices) == 200 for o in coll.objects)
    assert (point_attrs.read(coll.objects["lamp"].data, "label_id") == LABELS.index("lamp")).all()


def test_split_without_labels_reports():
    obj = build()
    before = snapshot(obj)
    with pytest.raises(RuntimeError, match="Label All first"):
        bpy.ops.ov3r.split_labels()
    assert_unchanged(before, snapshot(obj))


def test_proxies_per_segment_and_per_label():
    obj = _labelled()
    assert bpy.ops.ov3r.make_proxies(mode="SEGMENT", min_points=1) == {"FINISHED"}
    coll = bpy.data.collections[proxies.collection_name(obj)]
    assert coll.name == "Ov3R proxies salon points"
    assert sorted(o.name for o in coll.objects) == sorted(f"{w} {i}" for i, w in enumerate(LABELS))
    sofa = coll.objects["sofa 0"]
    assert np.allclose(sofa.matrix_world.to_translation(), CENTERS[0], atol=1e-5)
    assert np.allclose(sofa.dimensions, EXTENTS[0], atol=1e-5)
    assert sofa["ov3r_proxy"]["label"] == "sofa"
    assert np.allclose(sofa.color[:3], scan_labels.label_colors(obj)[0])
    # Again, per label: the collection is replaced (no duplicates).
    assert bpy.ops.ov3r.make_proxies(mode="LABEL", min_points=1) == {"FINISHED"}
    assert sorted(o.name for o in coll.objects) == sorted(LABELS)
    assert np.allclose(coll.objects["lamp"].dimensions, EXTENTS[3], atol=1e-5)
    n_before = len(bpy.data.objects)
    assert bpy.ops.ov3r.make_proxies(mode="LABEL", min_points=1) == {"FINISHED"}
    assert len(bpy.data.objects) == n_before
    with pytest.raises(RuntimeError, match="at least 100000 points"):
        bpy.ops.ov3r.make_proxies(mode="SEGMENT", min_points=100000)


def test_set_scale_from_two_vertices_cursor_and_size():
    obj = _labelled()
    bpy.ops.ov3r.make_proxies(mode="SEGMENT", min_points=1)
    cam = bpy.data.objects[blend_storage.info(obj)["camera"]]
    bpy.context.scene.frame_set(1)
    cam_before = np.array(cam.matrix_world.to_translation())
    assert np.allclose(cam_before, [0, -3, 1.5], atol=1e-5)
    pos = point_attrs.read(obj.data, "position")
    sel = np.zeros(len(pos), bool)
    sel[[3, 450]] = True
    point_attrs.set_selection(obj.data, sel)
    measured = float(np.linalg.norm(pos[3] - pos[450]))
    bpy.ops.object.mode_set(mode="EDIT")
    assert bpy.ops.ov3r.set_scale(source="VERTICES", distance=2 * measured) == {"FINISHED"}
    bpy.ops.object.mode_set(mode="OBJECT")
    assert np.allclose(point_attrs.read(obj.data, "position"), 2 * pos, atol=1e-5)
    seg = blend_storage.read_segments(obj)
    assert np.allclose(seg.box_extent, 2 * EXTENTS, atol=1e-5)
    assert np.allclose(blend_storage.read_cameras(obj).world_from_camera[:, :3, 3][0], 2 * np.array([0, -3, 1.5]))
    bpy.context.scene.frame_set(1)
    assert np.allclose(np.array(cam.matrix_world.to_translation()), 2 * cam_before, atol=1e-4)
    sofa = bpy.data.collections[proxies.collection_name(obj)].objects["sofa 0"]
    assert np.allclose(sofa.dimensions, 2 * EXTENTS[0], atol=1e-4)
    # From a known size: the lamp is 1.8 m tall in the scene's units -> make it 0.9 m.
    assert bpy.ops.ov3r.set_scale(source="SEGMENT", size_spec="lamp: 0.9") == {"FINISHED"}
    assert np.allclose(blend_storage.read_segments(obj).box_extent, 0.5 * EXTENTS, atol=1e-5)
    # Two cursor positions.
    bpy.context.scene.cursor.location = (0, 0, 0)
    assert bpy.ops.ov3r.scale_point_a() == {"FINISHED"}
    bpy.context.scene.cursor.location = (1, 0, 0)
    assert bpy.ops.ov3r.set_scale(source="CURSOR", distance=3.0) == {"FINISHED"}
    assert np.allclose(blend_storage.read_segments(obj).box_extent, 1.5 * EXTENTS, atol=1e-4)


def test_set_scale_bad_input_changes_nothing():
    obj = _labelled()
    before = snapshot(obj)
    with pytest.raises(RuntimeError, match="exactly two points"):
        bpy.ops.ov3r.set_scale(source="VERTICES", distance=1.0)
    with pytest.raises(RuntimeError, match="No segment is labelled 'piano'"):
        bpy.ops.ov3r.set_scale(source="SEGMENT", size_spec="piano: 1.0")
    with pytest.raises(RuntimeError, match="look like"):
        bpy.ops.ov3r.set_scale(source="SEGMENT", size_spec="door 2 m")
    with pytest.raises(RuntimeError, match="Store point A first"):
        bpy.ops.ov3r.set_scale(source="CURSOR", distance=1.0)
    assert_unchanged(before, snapshot(obj))
