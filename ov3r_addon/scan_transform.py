"""Apply a similarity (align / real-world scale) to a scan's data: the points, the stored
cameras and segment boxes, the animated camera and the blocking proxies, so everything
(and every export) follows. The object transform is left alone."""

from __future__ import annotations

import json

import bpy
import numpy as np
from mathutils import Matrix

from ..core.scene.align import transform_scene
from . import blend_storage, camera_path, compat, point_attrs, proxies, scan_query, scene_builder


def apply_similarity(obj: bpy.types.Object, t: np.ndarray, bl_scene: bpy.types.Scene | None = None) -> None:
    bl_scene = bl_scene or bpy.context.scene
    t = np.asarray(t, np.float64)
    scene = transform_scene(blend_storage.scene_from_object(obj), t)
    point_attrs.write(obj.data, "position", "FLOAT_VECTOR", scene.points)
    obj.data.update()
    blend_storage.store_tables(obj, scene)
    obj[blend_storage.INFO_KEY]["metadata"] = json.dumps(scene.metadata, ensure_ascii=False, default=str)
    scan_query.forget_cache()
    cam = bpy.data.objects.get(str(obj[blend_storage.INFO_KEY].get("camera", "")))
    if cam is not None and len(scene.cameras):
        # Keep the path's timing as imported; only the poses change.
        frames = _keyframe_frames(cam, len(scene.cameras))
        if frames is None:
            fps = bl_scene.render.fps / bl_scene.render.fps_base
            frames = camera_path.keyframe_frames(scene.cameras.timestamps, fps, scene_builder.FRAME_START)
        camera_path.animate_camera(cam, scene.cameras.world_from_camera, frames)
    coll = proxies.proxy_collection(obj)
    if coll is not None:  # proxies live in world space: conjugate by the scan's transform
        world = np.array(obj.matrix_world)
        m = Matrix((world @ t @ np.linalg.inv(world)).tolist())
        for p in coll.objects:
            p.matrix_world = m @ p.matrix_world


def _keyframe_frames(cam: bpy.types.Object, count: int) -> np.ndarray | None:
    """Frames of the camera's location keys, or None when they do not match ``count`` poses."""
    curve = compat.find_fcurve(cam.animation_data, "location", 0)
    if curve is None or len(curve.keyframe_points) != count:
        return None
    return np.array([k.co[0] for k in curve.keyframe_points], np.float64)


def selected_vertices(obj: bpy.types.Object) -> np.ndarray:
    """Local coordinates of the selected vertices (edit mode or object mode)."""
    if obj.mode == "EDIT":
        import bmesh

        bm = bmesh.from_edit_mesh(obj.data)
        return np.array([v.co[:] for v in bm.verts if v.select], np.float64).reshape(-1, 3)
    sel = point_attrs.selection(obj.data)
    pos = point_attrs.read(obj.data, "position")
    return pos[sel].astype(np.float64)


def segment_size(obj: bpy.types.Object, spec: str) -> tuple[float, float, str]:
    """``"door: 2.0"`` -> (measured height of the biggest 'door' segment, 2.0, description).
    ``"segment 12: 0.8"`` picks a segment by index. Height = the box extent along the axis
    closest to Z."""
    name, sep, value = spec.rpartition(":")
    if not sep:
        raise ValueError("Known size must look like 'door: 2.0' (label: metres)")
    try:
        true = float(value.strip().removesuffix("m").strip())
    except ValueError:
        raise ValueError(f"Not a length: {value.strip()!r}") from None
    seg = blend_storage.read_segments(obj)
    name = name.strip()
    if name.lower().startswith("segment "):
        try:
            idx = int(name.split()[1])
        except ValueError:
            raise ValueError(f"Not a segment number: {name!r}") from None
        if not 0 <= idx < len(seg):
            raise ValueError(f"No segment {idx} (the scan has {len(seg)})")
    else:
        cand = [i for i, lab in enumerate(seg.label) if lab.lower() == name.lower()]
        if not cand:
            raise ValueError(f"No segment is labelled {name!r} (run Label All, or use 'segment N: size')")
        idx = max(cand, key=lambda i: float(np.prod(seg.box_extent[i])))
    axes = seg.box_axes[idx]
    up = int(np.argmax(np.abs(axes[:, 2])))
    return float(seg.box_extent[idx][up]), true, f"segment {idx} ({seg.label[idx] or 'unlabeled'})"
