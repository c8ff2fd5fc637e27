"""Apply a similarity (align / real-world scale) to a scan's data: the points, the stored
cameras and segment boxes, the animated camera and the blocking proxies, so everything
(and every export) follows. The object transform is left alone."""

from __future__ import annotations

import json

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ..core.scene.align import transform_cameras, transform_scene
from ..core.scene.cameras import Cameras
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
    if cam is not None:
        # Move the animated path as it is (a key per video frame, or per keyframe in older files): its
        # timing stays as imported, only the poses change.
        keyed = _keyed_path(cam)
        if keyed is not None:
            wfc, frames = keyed
            camera_path.animate_camera(cam, transform_cameras(Cameras(
                np.zeros((len(wfc), 3, 3), np.float32), wfc.astype(np.float32), frames, np.zeros(len(wfc), np.int32),
                (0, 0)), t).world_from_camera, frames)
        elif len(scene.cameras):
            fps = bl_scene.render.fps / bl_scene.render.fps_base
            frames = camera_path.keyframe_frames(scene.cameras.timestamps, fps, scene_builder.FRAME_START)
            camera_path.animate_camera(cam, scene.cameras.world_from_camera, frames)
    coll = proxies.proxy_collection(obj)
    if coll is not None:  # proxies live in world space: conjugate by the scan's transform
        world = np.array(obj.matrix_world)
        m = Matrix((world @ t @ np.linalg.inv(world)).tolist())
        for p in coll.objects:
            p.matrix_world = m @ p.matrix_world


def _keyed_path(cam: bpy.types.Object) -> tuple[np.ndarray, np.ndarray] | None:
    """The camera's keyed poses as (K,4,4) OpenCV world_from_camera and their (K,) frames, or None
    when it has no complete location + quaternion keys."""
    curves = [compat.find_fcurve(cam.animation_data, "location", i) for i in range(3)]
    curves += [compat.find_fcurve(cam.animation_data, "rotation_quaternion", i) for i in range(4)]
    if any(c is None for c in curves) or len({len(c.keyframe_points) for c in curves}) != 1:
        return None
    k = len(curves[0].keyframe_points)
    if k == 0:
        return None
    co = np.zeros((7, 2 * k), np.float32)
    for c, row in zip(curves, co):
        c.keyframe_points.foreach_get("co", row)
    frames = co[0, 0::2].astype(np.float64)
    values = co[:, 1::2].T.astype(np.float64)  # (K,7): location, quaternion w x y z
    mats = np.tile(np.eye(4), (k, 1, 1))
    mats[:, :3, 3] = values[:, :3]
    mats[:, :3, :3] = [np.array(Quaternion(q).normalized().to_matrix()) for q in values[:, 3:]]
    return mats @ camera_path.CV_TO_BLENDER, frames  # Blender's camera axes back to OpenCV's


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
