"""Recovered keyframe cameras -> one animated Blender camera with the video behind it.

OpenCV camera axes (x right, y down, z forward) become Blender's (x right, y up, looking
down -z) by negating the camera's Y and Z axes: ``M_blender = M_opencv @ diag(1,-1,-1,1)``.
A keyframe at video time t lands on frame ``frame_start + t * fps`` (subframes allowed),
so the movie clip (which starts at ``frame_start``) lines up with the camera.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0, 1.0])
SENSOR_MM = 36.0


@dataclass
class LensParams:
    lens: float
    sensor_fit: str
    sensor_width: float
    sensor_height: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0


def lens_from_intrinsics(K: np.ndarray, image_size: tuple[int, int]) -> LensParams:
    """Pinhole K (pixels of a W x H image) -> Blender lens, sensor, shift and pixel aspect.

    The sensor (SENSOR_MM) is fitted to the longer image side, whose focal length sets the
    lens; fx != fy becomes a render pixel aspect (ycor = aspect_y / aspect_x = fx / fy);
    shift is the principal point's offset from the image centre in Blender's view units
    (see BKE_camera_params_compute_viewplane: units of the fitted side, y scaled by ycor).
    """
    w, h = float(image_size[0]), float(image_size[1])
    if w <= 0 or h <= 0:
        w, h = 2.0 * float(K[0, 2]), 2.0 * float(K[1, 2])
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    ycor = fx / fy
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
    if w >= h:
        viewfac = w
        return LensParams(fx * SENSOR_MM / w, "HORIZONTAL", SENSOR_MM, SENSOR_MM * h * ycor / w,
                          (w / 2.0 - cx) / viewfac, (cy - h / 2.0) * ycor / viewfac, aspect_x, aspect_y)
    viewfac = ycor * h
    return LensParams(fy * SENSOR_MM / h, "VERTICAL", SENSOR_MM * w / viewfac, SENSOR_MM,
                      (w / 2.0 - cx) / viewfac, (cy - h / 2.0) * ycor / viewfac, aspect_x, aspect_y)


def blender_matrices(world_from_camera: np.ndarray) -> np.ndarray:
    """(M,4,4) OpenCV world-from-camera -> (M,4,4) Blender camera matrix_world."""
    return np.asarray(world_from_camera, np.float64) @ CV_TO_BLENDER


def video_fps(metadata: dict, default: float) -> float:
    fps = (metadata.get("video") or {}).get("fps") or metadata.get("fps")
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        return default
    return fps if math.isfinite(fps) and fps > 0 else default


def set_scene_fps(scene: bpy.types.Scene, fps: float) -> float:
    """Set render fps (29.97 -> 30 / 1.001); returns the effective fps."""
    base = max(1, round(fps))
    scene.render.fps = base
    scene.render.fps_base = base / fps
    return scene.render.fps / scene.render.fps_base


def keyframe_frames(timestamps: np.ndarray, fps: float, frame_start: int) -> np.ndarray:
    return frame_start + np.asarray(timestamps, np.float64) * fps


def camera_keys(world_from_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M,3) Blender locations and (M,4) sign-continuous quaternions (w, x, y, z) of the cameras."""
    mats = blender_matrices(world_from_camera)
    loc = mats[:, :3, 3].copy()
    rot = mats[:, :3, :3] / np.linalg.norm(mats[:, :3, :3], axis=1, keepdims=True)
    quats = np.array([Matrix(r.tolist()).to_quaternion()[:] for r in rot]).reshape(-1, 4)
    for i in range(1, len(quats)):  # the shorter way round, as Quaternion.make_compatible
        if np.dot(quats[i], quats[i - 1]) < 0:
            quats[i] = -quats[i]
    return loc, quats


def animate_camera(obj: bpy.types.Object, world_from_camera: np.ndarray, frames: np.ndarray) -> None:
    """Key location + quaternion at each (sub)frame, written in bulk (a key per video frame of a long
    video would take the UI for tens of seconds one ``keyframe_insert`` at a time)."""
    from . import compat

    if obj.animation_data is not None:
        obj.animation_data_clear()
    obj.rotation_mode = "QUATERNION"
    if not len(frames):
        return
    loc, quats = camera_keys(world_from_camera)
    frames = np.asarray(frames, np.float64)
    # one ordinary insert makes the action, its slot and the seven F-curves in whichever form this
    # Blender uses; the rest of the keys are added to those curves at once
    obj.location = loc[0]
    obj.rotation_quaternion = quats[0]
    obj.keyframe_insert("location", frame=float(frames[0]))
    obj.keyframe_insert("rotation_quaternion", frame=float(frames[0]))
    for path, values in (("location", loc), ("rotation_quaternion", quats)):
        for i in range(values.shape[1]):
            curve = compat.find_fcurve(obj.animation_data, path, i)
            if curve is None:
                raise RuntimeError(f"no F-curve for {path}[{i}] after keying it")
            curve.keyframe_points.add(len(frames) - 1)
            co = np.stack([frames, values[:, i]], 1).astype(np.float32)
            curve.keyframe_points.foreach_set("co", co.ravel())
            curve.keyframe_points.foreach_set("handle_left", co.ravel())
            curve.keyframe_points.foreach_set("handle_right", co.ravel())
            curve.keyframe_points.foreach_set(
                "interpolation", np.full(len(frames), _LINEAR, np.int32))
            curve.update()


#: the enum value of "LINEAR" in FCurve keyframe interpolation: between two video frames' cameras a
#: straight line, not a Bezier overshoot
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def apply_lens(cam: bpy.types.Camera, K: np.ndarray, image_size: tuple[int, int],
               bl_scene: bpy.types.Scene | None = None) -> None:
    """Lens, sensor and shift on ``cam``; pixel aspect on ``bl_scene``'s render settings."""
    p = lens_from_intrinsics(K, image_size)
    if bl_scene is not None:
        bl_scene.render.pixel_aspect_x = p.pixel_aspect_x
        bl_scene.render.pixel_aspect_y = p.pixel_aspect_y
    cam.sensor_fit = p.sensor_fit
    cam.sensor_width = p.sensor_width
    cam.sensor_height = p.sensor_height
    cam.lens = p.lens
    cam.shift_x = p.shift_x
    cam.shift_y = p.shift_y


def load_clip(video_path: str, frame_start: int) -> bpy.types.MovieClip | None:
    """The video as a movie clip, or None when Blender cannot read it (not an error)."""
    if not video_path or not os.path.isfile(video_path):
        return None
    try:
        clip = bpy.data.movieclips.load(video_path, check_existing=False)
    except RuntimeError as exc:
        print(f"Ov3R: cannot load {video_path!r} as a movie clip: {exc}")
        return None
    clip.frame_start = frame_start
    return clip


def set_background(cam: bpy.types.Camera, clip: bpy.types.MovieClip | None) -> None:
    cam.background_images.clear()
    if clip is None:
        return
    bg = cam.background_images.new()
    bg.source = "MOVIE_CLIP"
    bg.clip = clip
    bg.use_camera_clip = False
    bg.alpha = 0.6
    cam.show_background_images = True
