"""Headless builder for ``ov3r blend``: SemanticScene file -> .blend (+ optional PNG render),
run in the bpy module in a separate process. Speaks the worker protocol on stdout."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..core.protocol import encode
from ..core.scene import SceneFormatError, load_scene
from ..core.worker import _protocol_stdout
from . import scene_builder


def _overview_camera(points: np.ndarray, world_from_camera: np.ndarray) -> bpy.types.Object:
    """A camera pulled back and up from the recovered path, looking at the cloud's centre.

    The scene's up is taken from the recovered cameras (OpenCV: -Y of a camera is up), since
    an unaligned reconstruction has no reason to have +Z up.
    """
    lo, hi = np.percentile(points, [2, 98], axis=0)
    target = np.median(points, axis=0)
    radius = float(np.linalg.norm(hi - lo)) / 2
    if len(world_from_camera):
        fwd = world_from_camera[:, :3, 2].mean(0)
        up = -world_from_camera[:, :3, 1].mean(0)
    else:
        fwd, up = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    fwd /= np.linalg.norm(fwd) + 1e-12
    up = up - fwd * (up @ fwd)
    up /= np.linalg.norm(up) + 1e-12
    pos = target - fwd * radius * 1.6 + up * radius * 0.9
    view = target - pos
    view /= np.linalg.norm(view)
    right = np.cross(view, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, view)
    mat = np.eye(4)
    mat[:3, 0], mat[:3, 1], mat[:3, 2], mat[:3, 3] = right, cam_up, -view, pos
    cam_data = bpy.data.cameras.new("Ov3R overview")
    cam_data.lens = 24
    cam_data.clip_end = max(100.0, radius * 20)
    cam = bpy.data.objects.new("Ov3R overview", cam_data)
    bpy.context.scene.collection.objects.link(cam)
    cam.matrix_world = Matrix(mat.tolist())
    return cam


def render_png(points: np.ndarray, world_from_camera: np.ndarray, path: str,
               resolution: tuple[int, int] = (960, 720)) -> None:
    scene = bpy.context.scene
    previous = scene.camera
    scene.camera = _overview_camera(points, world_from_camera)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"  # scan colours are display colours: no tone mapping
    if scene.world is None:
        scene.world = bpy.data.worlds.new("Ov3R world")
    scene.world.color = (0.05, 0.05, 0.06)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(Path(path).resolve())
    bpy.ops.render.render(write_still=True)
    # The overview camera is only for the picture; the recovered camera stays active.
    bpy.data.objects.remove(scene.camera)
    scene.camera = previous


def main(argv: list[str] | None = None) -> int:
    out = _protocol_stdout()

    def emit(type_: str, **data) -> None:
        out.write(encode(type_, **data) + "\n")
        out.flush()

    p = argparse.ArgumentParser(prog="ov3r blend (headless)")
    p.add_argument("scene")
    p.add_argument("output")
    p.add_argument("--video", default="")
    p.add_argument("--render", default="")
    p.add_argument("--point-size", type=float, default=0.0)
    args = p.parse_args(argv)
    steps = 4 if args.render else 3
    try:
        emit("progress", stage="blend", done=0, total=steps)
        scene = load_scene(args.scene)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        emit("progress", stage="blend", done=1, total=steps)
        video = args.video or scene.metadata.get("video", {}).get("path", "")
        video = video if video and os.path.exists(video) else ""
        extent = float(np.linalg.norm(np.ptp(scene.points, axis=0))) if len(scene) else 1.0
        size = args.point_size or max(1e-4, extent / 500)
        scene_builder.build_scene(scene, video_path=video, scene_path=str(Path(args.scene).resolve()), point_size=size)
        emit("progress", stage="blend", done=2, total=steps)
        if args.render:
            render_png(scene.points, scene.cameras.world_from_camera, args.render)
            emit("progress", stage="blend", done=3, total=steps)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(Path(args.output).resolve()), check_existing=False)
        emit("progress", stage="blend", done=steps, total=steps)
        emit("done", path=str(Path(args.output).resolve()))
        return 0
    except SceneFormatError as exc:
        emit("error", message=str(exc))
        return 2
    except Exception as exc:  # noqa: BLE001 - report, with the trace on stderr
        import traceback

        traceback.print_exc()
        emit("error", message=f"{exc.__class__.__name__}: {exc}")
        return 1
