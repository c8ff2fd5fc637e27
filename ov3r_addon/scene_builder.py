"""SemanticScene -> Blender: a collection named after the video holding one points object
(vertices + point attributes, shown through the "Mesh to Points" modifier) and one
animated camera with the video as its background. Pure functions of their inputs, usable
without the job runner; ``build_scene(..., built=previous)`` updates a previous result in
place (how partial results grow in the viewport)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..core.scene import SUFFIX, SemanticScene
from ..core.semantics.query import recorded_threshold
from . import blend_storage, camera_path, point_cloud, point_display

FRAME_START = 1


@dataclass
class BuiltScene:
    """Names (not references: references die on undo / file load) of what was built."""

    collection: str
    points: str
    camera: str = ""
    clip: str = ""

    def points_object(self) -> bpy.types.Object | None:
        return bpy.data.objects.get(self.points)

    def camera_object(self) -> bpy.types.Object | None:
        return bpy.data.objects.get(self.camera) if self.camera else None


def display_name(video_path: str, scene_path: str = "") -> str:
    if video_path:
        return Path(video_path).stem
    name = Path(scene_path).name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else Path(name).stem or "scene"


def build_scene(
    scene: SemanticScene,
    *,
    video_path: str = "",
    scene_path: str = "",
    point_size: float = 0.01,
    bl_scene: bpy.types.Scene | None = None,
    built: BuiltScene | None = None,
    final: bool = True,
) -> BuiltScene:
    """Create (or update ``built``) the objects for ``scene``; returns what now exists."""
    bl_scene = bl_scene or bpy.context.scene
    name = display_name(video_path, scene_path)
    coll = bpy.data.collections.get(built.collection) if built else None
    if coll is None:
        coll = bpy.data.collections.new(f"Ov3R {name}")
        bl_scene.collection.children.link(coll)

    obj = _build_points(scene, name, coll, built.points_object() if built else None, point_size)
    cam_obj = _build_camera(scene, name, coll, built.camera_object() if built else None, bl_scene)
    clip_name = built.clip if built else ""
    if cam_obj is not None and final and not (clip_name and clip_name in bpy.data.movieclips):
        clip = camera_path.load_clip(video_path, FRAME_START)
        camera_path.set_background(cam_obj.data, clip)
        clip_name = clip.name if clip else ""
    if cam_obj is not None and (final or bl_scene.camera is None):
        bl_scene.camera = cam_obj

    blend_storage.store_info(obj, scene, video_path, scene_path, cam_obj.name if cam_obj else "", not final)
    blend_storage.store_tables(obj, scene)
    _default_threshold(obj, scene.metadata)
    return BuiltScene(coll.name, obj.name, cam_obj.name if cam_obj else "", clip_name)


def _default_threshold(obj: bpy.types.Object, metadata: dict) -> None:
    """The threshold the scene records for its descriptors (if any) as the query default."""
    thr = recorded_threshold(metadata)
    scan = getattr(obj, "ov3r_scan", None)
    if thr is not None and scan is not None and "threshold" not in scan.keys():
        scan["threshold"] = float(min(max(thr, -1.0), 1.0))
        scan["label_threshold"] = float(min(max(thr, -1.0), 1.0))


def _build_points(scene: SemanticScene, name: str, coll: bpy.types.Collection, obj: bpy.types.Object | None,
                  point_size: float) -> bpy.types.Object:
    mesh = point_cloud.new_points_mesh(
        f"{name} points", scene.points, scene.colors, scene.confidence, scene.segment_id, scene.frame_id
    )
    if obj is None:
        obj = bpy.data.objects.new(f"{name} points", mesh)
        coll.objects.link(obj)
        point_display.add_points_modifier(obj, point_size)
    else:
        old = obj.data
        obj.data = mesh
        if old is not None and old.users == 0:
            bpy.data.meshes.remove(old)
    return obj


def _build_camera(scene: SemanticScene, name: str, coll: bpy.types.Collection, obj: bpy.types.Object | None,
                  bl_scene: bpy.types.Scene) -> bpy.types.Object | None:
    cams = scene.cameras
    if len(cams) == 0:
        return obj
    if obj is None:
        obj = bpy.data.objects.new(f"{name} camera", bpy.data.cameras.new(f"{name} camera"))
        coll.objects.link(obj)
    camera_path.apply_lens(obj.data, cams.intrinsics[0], cams.image_size, bl_scene)
    fps = camera_path.set_scene_fps(bl_scene, camera_path.video_fps(scene.metadata, _scene_fps(bl_scene)))
    # every video frame's camera when the scene has them (interpolated ones included), else the keyframes'
    path = scene.frame_path.cameras if scene.frame_path is not None and len(scene.frame_path) else cams
    frames = camera_path.keyframe_frames(path.timestamps, fps, FRAME_START)
    camera_path.animate_camera(obj, path.world_from_camera, frames)
    video = scene.metadata.get("video") or {}
    last_key = int(math.ceil(float(frames.max()) - 1e-6))  # float noise must not add a frame
    n_frames = int(video.get("frames_read") or 0)
    bl_scene.frame_start = FRAME_START
    bl_scene.frame_end = max(FRAME_START + n_frames - 1, last_key, FRAME_START)
    _set_resolution(bl_scene, cams.image_size, video)
    obj["ov3r"] = {"kind": "camera", "keyframes": len(cams)}
    coverage = scene.metadata.get("coverage") or {}
    if coverage:  # what part of the animation is measured, for scripts and the user
        obj["ov3r"]["placed_fraction"] = float(coverage.get("fraction", 0.0))
        obj["ov3r"]["unplaced_frames"] = [[FRAME_START + r["first"], FRAME_START + r["last"]]
                                          for r in coverage.get("unplaced", [])]
    return obj


def _scene_fps(bl_scene: bpy.types.Scene) -> float:
    return bl_scene.render.fps / bl_scene.render.fps_base


def _set_resolution(bl_scene: bpy.types.Scene, image_size: tuple[int, int], video: dict) -> None:
    w, h = int(image_size[0]), int(image_size[1])
    if w <= 0 or h <= 0:
        return
    full = max(int(video.get("width") or 0), int(video.get("height") or 0), w, h)
    scale = full / max(w, h)
    bl_scene.render.resolution_x = int(round(w * scale))
    bl_scene.render.resolution_y = int(round(h * scale))
    bl_scene.render.resolution_percentage = 100


def remove_built(built: BuiltScene | None) -> None:
    """Delete everything ``built`` names (objects, their data, the clip, the collection)."""
    if built is None:
        return
    for obj_name in (built.points, built.camera):
        obj = bpy.data.objects.get(obj_name) if obj_name else None
        if obj is None:
            continue
        data = obj.data
        bpy.data.objects.remove(obj, do_unlink=True)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)
        elif isinstance(data, bpy.types.Camera) and data.users == 0:
            bpy.data.cameras.remove(data)
    clip = bpy.data.movieclips.get(built.clip) if built.clip else None
    if clip is not None:
        bpy.data.movieclips.remove(clip)
    coll = bpy.data.collections.get(built.collection)
    if coll is not None:
        bpy.data.collections.remove(coll)
    point_display.remove_unused()


def make_active(obj: bpy.types.Object | None, view_layer: bpy.types.ViewLayer | None = None) -> None:
    view_layer = view_layer or bpy.context.view_layer
    if obj is None or view_layer is None:
        return
    try:
        for other in view_layer.objects.selected:
            other.select_set(False, view_layer=view_layer)
        obj.select_set(True, view_layer=view_layer)
        view_layer.objects.active = obj
    except RuntimeError as exc:  # e.g. the collection is excluded from this view layer
        print(f"Ov3R: could not make {obj.name!r} active: {exc}")


def points_bounds(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of the points in world space, for framing the view."""
    n = len(obj.data.vertices)
    co = np.empty(n * 3, np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", co)
    co = co.reshape(n, 3)
    return (co.min(0), co.max(0)) if n else (np.zeros(3), np.zeros(3))


