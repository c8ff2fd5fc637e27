"""Exports of a scan with its semantic attributes.

* PLY: ``core.export.labels`` (segment_id, label_id, score + the usual) and a labels JSON.
* glTF: Blender's own exporter on a temporary copy whose point attributes are renamed
  ``_segment_id`` / ``_label_id`` / ``_score`` / ``_confidence`` (glTF custom attributes
  must start with "_", the exporter writes them with ``export_attributes=True``; the
  vertex-only mesh is written as glTF points with ``use_mesh_vertices=True``). glTF
  stores them as floats and upper-cases their names on re-import (``_SEGMENT_ID``).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..core.export.labels import (
    labels_document,
    labels_json_path,
    write_labelled_ply,
    write_labels_json,
    write_per_label,
)
from . import blend_storage, point_attrs, scan_labels, scan_query

GLTF_ATTRS = {"segment_id": "_segment_id", "label_id": "_label_id", scan_query.SCORE_ATTR: "_score",
              "confidence": "_confidence", "frame_id": "_frame_id"}


def _arrays(obj: bpy.types.Object):
    scene = blend_storage.scene_from_object(obj)
    n = len(scene)
    label_id = point_attrs.read(obj.data, scan_labels.LABEL_ATTR)
    score = point_attrs.read(obj.data, scan_query.SCORE_ATTR)
    return (scene, np.full(n, -1, np.int32) if label_id is None else label_id,
            np.zeros(n, np.float32) if score is None else score)


def _query_info(obj: bpy.types.Object) -> dict | None:
    q = scan_query.last_query(obj)
    return {"text": q["text"], "threshold": float(obj.ov3r_scan.threshold)} if q else None


def export_ply(obj: bpy.types.Object, path: str, per_label: bool = False) -> list[Path]:
    """The PLY, its labels JSON and (``per_label``) one PLY per label; returns the files written."""
    scene, label_id, score = _arrays(obj)
    names = scan_labels.label_names(obj)
    out = [write_labelled_ply(scene, path, label_id, score)]
    doc = labels_document(scene, names, scan_labels.label_colors(obj), label_id, _query_info(obj))
    out.append(write_labels_json(labels_json_path(path), doc))
    if per_label and names:
        out += write_per_label(scene, path, label_id, names, score)
    return out


def export_gltf(obj: bpy.types.Object, path: str, context: bpy.types.Context | None = None) -> list[Path]:
    """A .glb / .gltf of the scan's points with their attributes, and the labels JSON."""
    context = context or bpy.context
    mesh = point_attrs.copy_subset(obj.data, np.ones(len(obj.data.vertices), bool), f"{obj.name} glTF")
    for src, dst in GLTF_ATTRS.items():
        attr = mesh.attributes.get(src)
        if attr is not None:
            attr.name = dst
    for name in [a.name for a in mesh.attributes if a.name.startswith("ov3r_")]:
        mesh.attributes.remove(mesh.attributes[name])
    tmp = bpy.data.objects.new(obj.name, mesh)
    tmp.matrix_world = obj.matrix_world.copy()
    context.scene.collection.objects.link(tmp)
    ext = Path(path).suffix.lower()
    view_layer = context.view_layer
    was_selected = [o.name for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active
    try:
        for o in view_layer.objects:  # the exporter reads the real selection
            o.select_set(o is tmp)
        view_layer.objects.active = tmp
        with context.temp_override(selected_objects=[tmp], active_object=tmp, object=tmp):
            res = bpy.ops.export_scene.gltf(
                filepath=str(path), use_selection=True, export_format="GLB" if ext == ".glb" else "GLTF_SEPARATE",
                export_attributes=True, use_mesh_vertices=True, export_vertex_color="ACTIVE",
                export_all_vertex_colors=True, export_materials="NONE", export_animations=False,
                export_cameras=False, export_lights=False, export_extras=True,
            )
        if res != {"FINISHED"}:
            raise RuntimeError(f"the glTF exporter returned {res}")
    finally:
        bpy.data.objects.remove(tmp, do_unlink=True)
        bpy.data.meshes.remove(mesh)
        for name in was_selected:
            o = view_layer.objects.get(name)
            if o is not None:
                o.select_set(True)
        view_layer.objects.active = active
    scene, label_id, _score = _arrays(obj)
    doc = labels_document(scene, scan_labels.label_names(obj), scan_labels.label_colors(obj), label_id,
                          _query_info(obj))
    return [Path(path), write_labels_json(labels_json_path(path), doc)]
