"""Every scan operator works on a reopened .blend (nothing lives only in Python memory)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bpy
from ov3r.core.export import read_ply_vertices
from ov3r.ov3r_addon import blend_storage, point_attrs, point_display, query_client, scan_query
from test_workflow_common import EXTENTS, LABELS, build, use_stand_in

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)


@pytest.fixture(autouse=True)
def stand_in(registered_addon):
    use_stand_in()
    yield
    query_client.set_encoder_override(None)


def _reopen(path):
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scan_query.forget_cache()
    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects["salon points"]
    bpy.context.view_layer.objects.active = obj
    return obj


def test_operators_after_reopen(tmp_path):
    obj = build()
    obj.ov3r_scan.vocabulary = ", ".join(LABELS)
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    obj = _reopen(tmp_path / "projet.blend")
    assert point_display.get_display(obj)[0] == 2  # still showing labels
    assert bpy.ops.ov3r.query_select(text="chair", threshold=0.95, wait=True) == {"FINISHED"}
    assert bpy.ops.ov3r.isolate() == {"FINISHED"}
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.ov3r.make_proxies(mode="LABEL", min_points=1) == {"FINISHED"}
    obj = _reopen(tmp_path / "projet.blend")
    assert sorted(o.name for o in bpy.data.collections["Ov3R proxies salon points"].objects) == sorted(LABELS)
    assert bpy.ops.ov3r.set_scale(source="SEGMENT", size_spec="table: 1.6") == {"FINISHED"}
    assert np.allclose(blend_storage.read_segments(obj).box_extent, 2 * EXTENTS, atol=1e-5)
    assert np.allclose(bpy.data.objects["table"].dimensions, 2 * EXTENTS[2], atol=1e-4)
    assert bpy.ops.ov3r.split_labels() == {"FINISHED"}
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.ov3r.export_ply(filepath=str(tmp_path / "après.ply")) == {"FINISHED"}
    v = read_ply_vertices(tmp_path / "après.ply")
    assert np.array_equal(v["label_id"], point_attrs.read(obj.data, "label_id"))
    assert (v["score"][v["segment_id"] == LABELS.index("chair")] > 0.95).all()
