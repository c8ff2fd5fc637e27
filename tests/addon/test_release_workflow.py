"""The artist's whole path through the *installed* extension zip, in whichever Blender (bpy)
runs the tests: install, import a real video through the real worker, query + select, label,
blocking proxies, PLY + glTF export, save + reopen, disable + enable.

`make test` runs this module, with the other modules marked ``blender_matrix``, in every
supported Blender version (``make test-blender``). The worker is ``$OV3R_WORKER_PYTHON`` (the
project's .venv there), else this interpreter.
"""

from __future__ import annotations

import importlib
import shutil

import numpy as np
import pytest
from conftest import REPO, bpy

pytestmark = pytest.mark.blender_matrix

MODULE = "bl_ext.user_default.ov3r"
VIDEO = REPO / "assets" / "sample_room.mp4"  # 120 frames, 640x480: a room corner with five objects


def _mod(name: str):
    """A module of the installed extension (not of the source tree)."""
    return importlib.import_module(f"{MODULE}.{name}")


def _scans() -> list:
    return [o for o in bpy.data.objects if o.type == "MESH" and "ov3r" in o.keys()]


def _check_scan(obj, n_min: int) -> int:
    point_attrs = _mod("ov3r_addon.point_attrs")
    compat = _mod("ov3r_addon.compat")
    point_display = _mod("ov3r_addon.point_display")
    n = len(obj.data.vertices)
    assert n >= n_min
    for name in ("color", "segment_id", "confidence", "frame_id"):
        assert len(point_attrs.read(obj.data, name)) == n, name
    assert point_display.points_modifier(obj) is not None
    assert point_display.get_point_size(obj) == pytest.approx(0.01)
    cam = bpy.context.scene.camera
    assert cam is not None and cam.type == "CAMERA"
    frames = {k.co[0] for fc in compat.action_fcurves(cam.animation_data) for k in fc.keyframe_points}
    assert len(frames) >= 3, "the camera path has too few keys"
    assert cam.data.background_images and cam.data.background_images[0].clip is not None
    return n


def test_installed_extension_end_to_end(extension_zip, tmp_path):
    video = tmp_path / "vidéos de la salle" / "séjour scan 1.mp4"
    video.parent.mkdir()
    shutil.copy(VIDEO, video)
    res = bpy.ops.extensions.package_install_files(filepath=str(extension_zip), repo="user_default",
                                                   enable_on_install=True)
    assert res == {"FINISHED"} and MODULE in bpy.context.preferences.addons
    try:
        _workflow(video, tmp_path)
    finally:
        if MODULE in bpy.context.preferences.addons:
            bpy.ops.preferences.addon_disable(module=MODULE)


def _workflow(video, tmp_path) -> None:
    point_attrs = _mod("ov3r_addon.point_attrs")
    point_display = _mod("ov3r_addon.point_display")
    proxies = _mod("ov3r_addon.proxies")
    read_ply_vertices = _mod("core.export").read_ply_vertices

    # Import: 40 frames at 320 px keep the worker to a fraction of a minute.
    assert bpy.ops.ov3r.import_video(filepath=str(video), max_frames=40, max_side=320, wait=True) == {"FINISHED"}
    (obj,) = _scans()
    n = _check_scan(obj, n_min=2000)
    segment_id = point_attrs.read(obj.data, "segment_id")
    assert (segment_id >= 0).mean() > 0.5, "most points should belong to a segment"

    # Query + select through the query worker: scores on every point, the display switched.
    assert bpy.ops.ov3r.query_select(text="floor", threshold=0.0, wait=True) == {"FINISHED"}
    score = point_attrs.read(obj.data, "query_score")
    picked = point_attrs.selection(obj.data)
    assert len(score) == n and 0 < picked.sum() < n
    assert np.array_equal(picked, score >= 0.0)
    assert point_display.get_display(obj) == (1, pytest.approx(0.0))

    # Label all: every labelled point's id names a legend entry, the display shows labels.
    obj.ov3r_scan.vocabulary = "floor, wall, table, chair, sofa, lamp, plant"
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    label_id = point_attrs.read(obj.data, "label_id")
    legend = {item.label_id: item.points for item in obj.ov3r_scan.legend}
    assert (label_id >= 0).any()
    assert {int(i): int(c) for i, c in zip(*np.unique(label_id[label_id >= 0], return_counts=True))} == \
        {k: v for k, v in legend.items() if v}
    assert point_display.get_display(obj)[0] == 2

    # Blocking proxies: one box per segment with points.
    assert bpy.ops.ov3r.make_proxies(mode="SEGMENT", min_points=1) == {"FINISHED"}
    coll = proxies.proxy_collection(obj)
    n_proxies = len(coll.objects) if coll is not None else 0
    assert n_proxies == len(np.unique(segment_id[segment_id >= 0]))
    bpy.context.view_layer.objects.active = obj

    # Exports: PLY with the attributes, glTF that Blender's own importer reads back.
    ply = tmp_path / "export scène.ply"
    assert bpy.ops.ov3r.export_ply(filepath=str(ply)) == {"FINISHED"}
    v = read_ply_vertices(ply)
    assert len(v) == n and np.array_equal(v["label_id"], label_id) and np.array_equal(v["segment_id"], segment_id)
    glb = tmp_path / "export scène.glb"
    assert bpy.ops.ov3r.export_gltf(filepath=str(glb), format="GLB") == {"FINISHED"}
    before = {o.name for o in bpy.data.objects}
    assert bpy.ops.import_scene.gltf(filepath=str(glb)) == {"FINISHED"}
    (imported,) = [o for o in bpy.data.objects if o.name not in before and o.type == "MESH"]
    assert len(imported.data.vertices) == n
    bpy.data.objects.remove(imported)

    # Save + reopen: points, labels, proxies and the display survive; the query runs again.
    name = obj.name
    blend = tmp_path / "dossier à espaces" / "scène.blend"
    blend.parent.mkdir()
    assert bpy.ops.wm.save_as_mainfile(filepath=str(blend)) == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)  # a new file; factory settings would disable the extension
    assert not _scans()
    assert bpy.ops.wm.open_mainfile(filepath=str(blend)) == {"FINISHED"}
    obj = bpy.data.objects[name]
    assert _check_scan(obj, n_min=n) == n
    assert np.array_equal(point_attrs.read(obj.data, "label_id"), label_id)
    assert len(proxies.proxy_collection(obj).objects) == n_proxies
    assert point_display.get_display(obj)[0] == 2
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.ov3r.query_select(text="floor", threshold=0.0, wait=True) == {"FINISHED"}
    assert np.allclose(point_attrs.read(obj.data, "query_score"), score, atol=1e-5)

    # Disable + enable: the data is untouched and the operators come back.
    assert bpy.ops.preferences.addon_disable(module=MODULE) == {"FINISHED"}
    assert not hasattr(bpy.types, "VIEW3D_PT_ov3r_import")
    assert bpy.ops.preferences.addon_enable(module=MODULE) == {"FINISHED"}
    assert bpy.ops.ov3r.import_video.poll()
    assert _check_scan(bpy.data.objects[name], n_min=n) == n
