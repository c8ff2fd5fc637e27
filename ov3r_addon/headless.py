"""Headless builder for ``ov3r blend``: SemanticScene file -> .blend (+ optional PNG render),
run in the bpy module in a separate process. Speaks the worker protocol on stdout."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ..core.protocol import encode
from ..core.scene import SceneFormatError, load_scene
from ..core.worker import _protocol_stdout
from . import scene_builder


def _overview_camera(points: np.ndarray) -> bpy.types.Object:
    """A camera looking down at the cloud from a 3/4 view, framing its robust bounds."""
    lo, hi = np.percentile(points, [2, 98], axis=0)
    center = Vector(((lo + hi) / 2).tolist())
    radius = float(np.linalg.norm(hi - lo)) / 2
    cam_data = bpy.data.cameras.new("Ov3R overview")
    cam_data.lens = 30
    cam = bpy.data.objects.new("Ov3R overview", cam_data)
    bpy.context.scene.collection.objects.link(cam)
    direction = Vector((1.0, -1.2, 0.9)).normalized()
    cam.location = center + direction * radius * 2.2
    cam.rotation_euler = (center - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam_data.clip_end = max(100.0, radius * 20)
    return cam


def render_png(points: np.ndarray, path: str, resolution: tuple[int, int] = (960, 720)) -> None:
    scene = bpy.context.scene
    previous = scene.camera
    scene.camera = _overview_camera(points)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 8
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
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
            render_png(scene.points, args.render)
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
