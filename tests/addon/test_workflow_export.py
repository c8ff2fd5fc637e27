"""Exports of a labelled, queried scan, each re-imported and compared: PLY (our reader and
Blender's PLY importer) + labels JSON, one PLY per label, glTF points with attributes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bpy
from ov3r.core.export import read_labels_json, read_ply_vertices
from ov3r.ov3r_addon import point_attrs, query_client
from test_workflow_common import LABELS, build, use_stand_in

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)


@pytest.fixture(autouse=True)
def stand_in(registered_addon):
    use_stand_in()
    yield
    query_client.set_encoder_override(None)


def _labelled_queried():
    obj = build()
    obj.ov3r_scan.vocabulary = ", ".join(LABELS)
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    assert bpy.ops.ov3r.query_select(text="sofa", threshold=0.95, wait=True) == {"FINISHED"}
    mesh = obj.data
    return obj, {k: point_attrs.read(mesh, k) for k in ("position", "segment_id", "label_id", "query_score",
                                                         "confidence", "frame_id")}


def test_ply_with_labels_json_and_per_label(tmp_path):
    _obj, ref = _labelled_queried()
    path = tmp_path / "salle exportée.ply"
    assert bpy.ops.ov3r.export_ply(filepath=str(path), per_label=True) == {"FINISHED"}
    v = read_ply_vertices(path)
    assert len(v) == len(ref["position"])
    assert np.array_equal(np.stack([v["x"], v["y"], v["z"]], 1), ref["position"])
    for name, key in (("segment_id", "segment_id"), ("label_id", "label_id"), ("score", "query_score"),
                      ("confidence", "confidence"), ("frame_id", "frame_id")):
        assert np.array_equal(v[name], ref[key]), name
    doc = read_labels_json(tmp_path / "salle exportée.labels.json")
    assert [lab["name"] for lab in doc["labels"]] == LABELS and all(lab["points"] == 200 for lab in doc["labels"])
    assert [s["label"] for s in doc["segments"]] == LABELS and doc["query"]["text"] == "sofa"
    for i, name in enumerate(LABELS):
        part = read_ply_vertices(tmp_path / f"salle exportée_{name}.ply")
        assert len(part) == 200 and (part["label_id"] == i).all()
    # Blender's own PLY importer reads the same points and the custom properties.
    bpy.ops.wm.ply_import(filepath=str(path))
    imported = bpy.context.selected_objects[0]
    assert len(imported.data.vertices) == len(ref["position"])
    got = point_attrs.read(imported.data, "position")
    assert np.allclose(got, ref["position"])
    for name in ("segment_id", "label_id"):
        assert name in imported.data.attributes, name
        assert np.array_equal(point_attrs.read(imported.data, name).astype(np.int64), ref[name].astype(np.int64))


@pytest.mark.parametrize("ext", [".glb", ".gltf"])
def test_gltf_points_with_attributes(tmp_path, ext):
    _obj, ref = _labelled_queried()
    path = tmp_path / f"scène{ext}"
    assert bpy.ops.ov3r.export_gltf(filepath=str(path), format="GLB" if ext == ".glb" else "GLTF") == {"FINISHED"}
    assert (tmp_path / "scène.labels.json").is_file()
    names_before = {o.name for o in bpy.data.objects}
    bpy.ops.import_scene.gltf(filepath=str(path))
    new = [o for o in bpy.data.objects if o.name not in names_before and o.type == "MESH"]
    assert len(new) == 1
    mesh = new[0].data
    assert len(mesh.vertices) == len(ref["position"])
    # glTF is Y-up: the importer turns it back to Blender's Z-up; match points by position.
    pos = np.array([new[0].matrix_world @ v.co for v in mesh.vertices], np.float32)
    a, b = np.lexsort(ref["position"].T), np.lexsort(pos.T)
    assert np.allclose(pos[b], ref["position"][a], atol=1e-5)
    for src, dst in (("segment_id", "_SEGMENT_ID"), ("label_id", "_LABEL_ID"), ("query_score", "_SCORE"),
                     ("confidence", "_CONFIDENCE")):
        assert dst in mesh.attributes, dst
        assert np.allclose(point_attrs.read(mesh, dst)[b], ref[src][a], atol=1e-6), src
