"""A rendered ground-truth "orbit" fixture: a textured room corner filmed like a handheld scan.

The scene (built from scratch, deterministic for a given :class:`OrbitConfig`): a floor
and two walls forming a room corner, plus five objects (box, tall box, cylinder,
sphere, cone), every surface with a strongly textured procedural material (noise /
voronoi / brick / checker with distinct colours) so structure-from-motion finds
features everywhere. Lit by a sun, an area light and a grey-blue world.

The camera moves along an arc (``arc_degrees``) around the scene centre at about
``radius`` metres, always looking at (a slightly jittered) centre, with smooth height,
radius and roll variation.

Output directory (see :func:`render_orbit`):

- ``video.mp4``      H.264 (libx264, yuv420p) of the rendered frames, in order, at ``fps``.
- ``cameras.npz``    ``intrinsics (3,3) float32`` (pixels), ``world_from_camera (F,4,4)
  float32`` (OpenCV convention: x right, y down, z forward), ``timestamps (F,) float64``
  (seconds), ``look_at (F,3) float32``, ``gt_points (P,3) float32`` (world, metres,
  uniform by area over every mesh surface), ``gt_normals (P,3) float32``,
  ``gt_object_index (P,) uint8`` (1-based index into ``object_names``), ``object_names
  (K,) str``, ``extent ()`` float64 = diagonal of the scene's bounding box.
- ``masks.npz``      ``object_index (F,H,W) uint8``: per pixel 1-based index of the visible
  object (0 = background), rendered with Workbench (flat colours, no anti-aliasing);
  only with ``config.masks`` (default True).
- ``config.json``    the :class:`OrbitConfig`, the module version and render timings.

Pixel convention of the intrinsics: continuous pixel coordinates where pixel ``(i, j)``
(column i, row j) covers ``[i, i+1) x [j, j+1)``, so its centre is ``(i+0.5, j+0.5)``
and the principal point is ``(W/2, H/2)`` (as in COLMAP). To sample an image at a
projected ``(u, v)``: ``img[int(v), int(u)]``.

``bpy`` is imported only inside the rendering functions: ``core.scenegen.orbit`` imports
without Blender. By default the render runs in a fresh Python subprocess (so it never
resets the ``bpy`` state of the calling process, e.g. a test session with the add-on
registered); pass ``in_process=True`` to render in the current interpreter.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cache import cache_dir

__all__ = [
    "ORBIT_VERSION",
    "OrbitConfig",
    "OrbitFixture",
    "render_orbit",
    "cached_orbit",
    "load_orbit",
    "default_cache_root",
    "config_hash",
    "camera_path",
    "project_points",
    "read_video_frames",
    "blender_to_opencv",
]

#: Bump when the scene, the camera path or the output format changes: invalidates caches.
ORBIT_VERSION = "orbit-1"

# OpenCV camera (x right, y down, z forward) <-> Blender camera (x right, y up, looks down -Z)
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class OrbitConfig:
    """Settings of an orbit fixture. Every field goes into the cache key.

    Attributes:
        width, height: image size in pixels (even numbers: yuv420p).
        frames: number of rendered frames.
        samples: Cycles samples per pixel.
        denoise: run OpenImageDenoise on each frame (cleaner, a bit slower).
        fps: frame rate of the video; ``timestamps = arange(frames) / fps``.
        seed: drives the camera jitter (height / roll / radius phases) and GT sampling.
        arc_degrees: azimuth span of the camera arc.
        radius: mean camera distance from the look-at point, metres.
        camera_height: mean camera height above the floor, metres.
        lens_mm: focal length with a 36 mm wide sensor (24 mm: ~74 deg horizontal FOV).
        gt_points: number of ground-truth surface samples.
        crf: x264 constant rate factor (lower = better quality).
        masks: also render per-frame object-index masks (Workbench).
    """

    width: int = 320
    height: int = 240
    frames: int = 36
    samples: int = 16
    denoise: bool = False
    fps: float = 12.0
    seed: int = 0
    arc_degrees: float = 90.0
    radius: float = 2.5
    camera_height: float = 1.3
    lens_mm: float = 24.0
    gt_points: int = 200_000
    crf: int = 16
    masks: bool = True

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be positive even numbers, got {self.width}x{self.height}")
        if self.frames < 1:
            raise ValueError("frames must be >= 1")
        if self.samples < 1:
            raise ValueError("samples must be >= 1")
        if self.fps <= 0:
            raise ValueError("fps must be > 0")

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the cache key is computed from this."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Dict) -> "OrbitConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def intrinsics(self) -> np.ndarray:
        """``(3,3) float32`` pinhole matrix in pixels (principal point at the image centre)."""
        f = self.lens_mm / 36.0 * self.width
        return np.array(
            [[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float32
        )


@dataclass
class OrbitFixture:
    """A rendered orbit fixture on disk, with its arrays loaded.

    Attributes:
        root: the fixture directory.
        video_path, cameras_path, config_path: files in ``root``; ``masks_path`` or None.
        config: the :class:`OrbitConfig` it was rendered with.
        intrinsics: ``(3,3) float32`` pixels.
        world_from_camera: ``(F,4,4) float32``, OpenCV camera convention.
        timestamps: ``(F,)`` seconds.
        look_at: ``(F,3) float32`` point each camera looks at (projects to the image centre).
        gt_points: ``(P,3) float32`` world surface samples, metres.
        gt_normals: ``(P,3) float32`` unit normals of those samples.
        gt_object_index: ``(P,) uint8`` 1-based index into ``object_names``.
        object_names: names of the scene's objects (floor and walls included).
        extent: diagonal of the scene's bounding box, metres.
        info: the rest of ``config.json`` (version, timings).
    """

    root: Path
    video_path: Path
    cameras_path: Path
    config_path: Path
    masks_path: Optional[Path]
    config: OrbitConfig
    intrinsics: np.ndarray
    world_from_camera: np.ndarray
    timestamps: np.ndarray
    look_at: np.ndarray
    gt_points: np.ndarray
    gt_normals: np.ndarray
    gt_object_index: np.ndarray
    object_names: List[str]
    extent: float
    info: Dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.world_from_camera.shape[0])

    @property
    def camera_centers(self) -> np.ndarray:
        """``(F,3)`` camera centres in world coordinates."""
        return self.world_from_camera[:, :3, 3]

    def read_frames(self) -> np.ndarray:
        """Decode ``video.mp4`` -> ``(F,H,W,3) uint8`` RGB."""
        return read_video_frames(self.video_path)

    def read_masks(self) -> np.ndarray:
        """``(F,H,W) uint8`` object index per pixel (0 = background)."""
        if self.masks_path is None:
            raise FileNotFoundError(f"fixture {self.root} was rendered without masks")
        with np.load(self.masks_path) as z:
            return z["object_index"]


# --------------------------------------------------------------------------- geometry


def _look_at_opencv(eye: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """World-from-camera ``(4,4)`` (OpenCV axes) for a camera at ``eye`` looking at ``target``.

    ``roll`` (radians) rotates the camera about its viewing axis.
    """
    f = target - eye
    f = f / np.linalg.norm(f)
    up = np.array([0.0, 0.0, 1.0])
    r = np.cross(f, up)
    r = r / np.linalg.norm(r)
    d = np.cross(f, r)  # "down" in the image: r x d = f (right-handed)
    R = np.stack([r, d, f], axis=1)
    c, s = math.cos(roll), math.sin(roll)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    T = np.eye(4)
    T[:3, :3] = R @ Rz
    T[:3, 3] = eye
    return T


def blender_to_opencv(matrix_world: np.ndarray) -> np.ndarray:
    """Blender camera ``matrix_world (4,4)`` -> world-from-camera in OpenCV axes (flip Y, Z).

    The same matrix maps back (the flip is its own inverse).
    """
    return np.asarray(matrix_world, dtype=np.float64) @ _FLIP_YZ


def camera_path(config: OrbitConfig) -> Tuple[np.ndarray, np.ndarray]:
    """The handheld-like arc: ``(world_from_camera (F,4,4) float64 OpenCV, look_at (F,3))``.

    Pure numpy: the same path whether or not Blender renders it.
    """
    rng = np.random.default_rng(config.seed)
    ph = rng.uniform(0, 2 * math.pi, size=8)
    centre = np.array([-0.1, -0.1, 0.35])
    n = config.frames
    u = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])
    arc = math.radians(config.arc_degrees)
    az = math.radians(45.0) + arc * (u - 0.5)  # camera in the open +x +y quadrant
    radius = config.radius * (1.0 + 0.04 * np.sin(2 * math.pi * 0.9 * u + ph[0]))
    height = config.camera_height + 0.08 * np.sin(2 * math.pi * 0.7 * u + ph[1]) + 0.03 * np.sin(
        2 * math.pi * 2.3 * u + ph[2]
    )
    roll = np.radians(3.0 * np.sin(2 * math.pi * 0.8 * u + ph[3]) + 1.0 * np.sin(2 * math.pi * 2.1 * u + ph[4]))
    jitter = 0.04 * np.stack([np.sin(2 * math.pi * 1.1 * u + ph[5]), np.sin(2 * math.pi * 1.3 * u + ph[6]),
                              0.5 * np.sin(2 * math.pi * 0.9 * u + ph[7])], axis=1)
    poses = np.zeros((n, 4, 4))
    targets = np.zeros((n, 3))
    for i in range(n):
        eye = centre + np.array([radius[i] * math.cos(az[i]), radius[i] * math.sin(az[i]), 0.0])
        eye[2] = height[i]
        targets[i] = centre + jitter[i]
        poses[i] = _look_at_opencv(eye, targets[i], float(roll[i]))
    return poses, targets


def project_points(
    points: np.ndarray, intrinsics: np.ndarray, world_from_camera: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Project world ``points (N,3)`` with ``intrinsics (3,3)`` and one OpenCV ``world_from_camera (4,4)``.

    Returns:
        ``(uv (N,2), depth (N,))``: pixel coordinates (convention in the module doc) and
        the camera-space z (> 0 in front of the camera).
    """
    T = np.asarray(world_from_camera, dtype=np.float64)
    R, c = T[:3, :3], T[:3, 3]
    pc = (np.asarray(points, dtype=np.float64) - c) @ R  # = R^T (p - c)
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw = pc @ np.asarray(intrinsics, dtype=np.float64).T
        uv = uvw[:, :2] / uvw[:, 2:3]
    return uv, z


def read_video_frames(path: Path) -> np.ndarray:
    """Decode every frame of a video with PyAV -> ``(F,H,W,3) uint8`` RGB."""
    import av

    frames = []
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            frames.append(fr.to_ndarray(format="rgb24"))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def _encode_video(frames: Sequence[np.ndarray], path: Path, fps: float, crf: int) -> None:
    from ..video.writer import write_video

    write_video(path, frames, fps=fps, crf=crf, preset="medium", tune="film")


# --------------------------------------------------------------------------- scene (bpy)

# (name, kind, size, location, rotation_z_deg, texture recipe, colour A, colour B)
_OBJECTS = [
    ("box", "box", (0.55, 0.45, 0.45), (-0.55, 0.35, 0.0), 15.0, "checker", (0.85, 0.25, 0.1), (0.95, 0.85, 0.3)),
    ("tall_box", "box", (0.3, 0.35, 0.95), (0.25, -0.7, 0.0), -25.0, "noise", (0.1, 0.35, 0.8), (0.6, 0.8, 0.95)),
    ("cylinder", "cylinder", (0.2, 0.2, 0.6), (0.55, 0.45, 0.0), 0.0, "voronoi", (0.1, 0.6, 0.2), (0.85, 0.95, 0.4)),
    ("sphere", "sphere", (0.25, 0.25, 0.25), (-0.05, -0.05, 0.0), 0.0, "noise", (0.7, 0.1, 0.6), (1.0, 0.7, 0.3)),
    ("cone", "cone", (0.25, 0.25, 0.55), (-0.8, -0.75, 0.0), 0.0, "voronoi", (0.9, 0.5, 0.05), (0.3, 0.1, 0.05)),
]
# Room: floor x,y in [-2, 4], walls at x = -2 and y = -2, 2.5 m tall.
_ROOM = [
    ("floor", "plane", ((-2.0, -2.0, 0.0), (4.0, -2.0, 0.0), (4.0, 4.0, 0.0), (-2.0, 4.0, 0.0)), "checker",
     (0.35, 0.3, 0.25), (0.9, 0.85, 0.75), "XYZ"),
    ("wall_x", "plane", ((-2.0, 4.0, 0.0), (-2.0, -2.0, 0.0), (-2.0, -2.0, 2.5), (-2.0, 4.0, 2.5)), "brick",
     (0.7, 0.3, 0.25), (0.95, 0.9, 0.8), "YZX"),
    ("wall_y", "plane", ((-2.0, -2.0, 0.0), (4.0, -2.0, 0.0), (4.0, -2.0, 2.5), (-2.0, -2.0, 2.5)), "voronoi",
     (0.15, 0.45, 0.5), (0.9, 0.95, 0.85), "XZY"),
]
# Flat colours of the mask pass (index 0 = background, black); decoded by nearest colour.
_MASK_PALETTE = np.array(
    [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255],
     [255, 128, 0], [128, 0, 255], [255, 255, 255], [128, 128, 128]], dtype=np.float64
)


_ALIASES = {"Fac": ("Fac", "Factor"), "Factor": ("Factor", "Fac")}


def _sock(node, name: str, typ: Optional[str] = None):
    for s in node.inputs:
        if s.name in _ALIASES.get(name, (name,)) and (typ is None or s.type == typ):
            return s
    raise KeyError(f"{node.bl_idname} has no input {name!r} ({typ})")


def _out(node, name: str, typ: Optional[str] = None):
    for s in node.outputs:
        if s.name in _ALIASES.get(name, (name,)) and (typ is None or s.type == typ):
            return s
    raise KeyError(f"{node.bl_idname} has no output {name!r} ({typ})")


def _make_material(bpy, name: str, recipe: str, ca, cb, seed: int, axes: str = "XYZ"):
    """A strongly textured material: a pattern (recipe) over multi-scale coloured noise.

    ``axes`` permutes the object coordinates fed to the textures so that 2D patterns
    (brick) lie in the plane of a wall: "YZX" for a wall at x = const.
    """
    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:  # older Blender
        mat.use_nodes = True
    nt = mat.node_tree
    nodes, links = nt.nodes, nt.links
    for n in list(nodes):
        nodes.remove(n)
    out = nodes.new("ShaderNodeOutputMaterial")
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    _sock(bsdf, "Roughness").default_value = 0.75
    links.new(_out(bsdf, "BSDF"), _sock(out, "Surface"))
    coord = nodes.new("ShaderNodeTexCoord")
    vec = _out(coord, "Object")
    if axes != "XYZ":
        sep = nodes.new("ShaderNodeSeparateXYZ")
        links.new(vec, sep.inputs[0])
        comb = nodes.new("ShaderNodeCombineXYZ")
        for k, a in enumerate(axes):
            links.new(_out(sep, a), comb.inputs[k])
        vec = comb.outputs[0]

    def ramp(fac_socket, stops):
        r = nodes.new("ShaderNodeValToRGB")
        els = r.color_ramp.elements
        while len(els) < len(stops):
            els.new(0.5)
        for e, (pos, col) in zip(els, stops):
            e.position = pos
            e.color = (*col, 1.0)
        links.new(fac_socket, _sock(r, "Fac"))
        return _out(r, "Color")

    def mix(a, b, fac: float, blend: str = "MIX"):
        m = nodes.new("ShaderNodeMix")
        m.data_type = "RGBA"
        m.blend_type = blend
        _sock(m, "Factor", "VALUE").default_value = fac
        links.new(a, _sock(m, "A", "RGBA"))
        links.new(b, _sock(m, "B", "RGBA"))
        return _out(m, "Result", "RGBA")

    ca, cb = np.asarray(ca), np.asarray(cb)
    dark = tuple(ca * 0.35)
    # fine coloured noise (features of a few cm) -> colours between dark A, A and B
    noise = nodes.new("ShaderNodeTexNoise")
    _sock(noise, "Scale").default_value = 9.0
    _sock(noise, "Detail").default_value = 4.0
    _sock(noise, "Roughness").default_value = 0.65
    links.new(vec, _sock(noise, "Vector"))
    fine = ramp(_out(noise, "Fac"), [(0.3, dark), (0.5, tuple(ca)), (0.7, tuple(cb))])
    # small voronoi speckles on top of everything
    vor = nodes.new("ShaderNodeTexVoronoi")
    _sock(vor, "Scale").default_value = 22.0
    links.new(vec, _sock(vor, "Vector"))
    speck = ramp(_out(vor, "Distance"), [(0.12, (0.05, 0.05, 0.05)), (0.2, (1.0, 1.0, 1.0))])
    base = mix(fine, speck, 1.0, "MULTIPLY")

    if recipe == "checker":
        chk = nodes.new("ShaderNodeTexChecker")
        _sock(chk, "Scale").default_value = 4.0
        links.new(vec, _sock(chk, "Vector"))
        links.new(base, _sock(chk, "Color1"))
        _sock(chk, "Color2").default_value = (*tuple(cb * 0.9 + 0.1), 1.0)
        col = mix(_out(chk, "Color"), base, 0.35)
    elif recipe == "brick":
        br = nodes.new("ShaderNodeTexBrick")
        _sock(br, "Scale").default_value = 3.0
        _sock(br, "Mortar Size").default_value = 0.015
        links.new(vec, _sock(br, "Vector"))
        links.new(base, _sock(br, "Color1"))
        _sock(br, "Color2").default_value = (*tuple(cb), 1.0)
        _sock(br, "Mortar").default_value = (0.08, 0.08, 0.08, 1.0)
        col = mix(_out(br, "Color"), base, 0.3)
    elif recipe == "voronoi":
        cells = nodes.new("ShaderNodeTexVoronoi")
        _sock(cells, "Scale").default_value = 6.0
        links.new(vec, _sock(cells, "Vector"))
        col = mix(base, _out(cells, "Color"), 0.45)
    else:  # "noise": pure multi-scale noise, with a second larger noise for contrast
        n2 = nodes.new("ShaderNodeTexNoise")
        _sock(n2, "Scale").default_value = 3.0
        _sock(n2, "Detail").default_value = 2.0
        links.new(vec, _sock(n2, "Vector"))
        big = ramp(_out(n2, "Fac"), [(0.4, tuple(cb)), (0.6, tuple(ca * 0.5))])
        col = mix(base, big, 0.5)
    links.new(col, _sock(bsdf, "Base Color"))
    return mat


def _build_mesh(bpy, bmesh, name: str, kind: str, size, verts=None):
    me = bpy.data.meshes.new(name)
    bm = bmesh.new()
    if kind == "plane":
        vs = [bm.verts.new(v) for v in verts]
        bm.faces.new(vs)
        # subdivide so the mesh is not a single huge quad (nicer for any later use)
        bmesh.ops.subdivide_edges(bm, edges=bm.edges[:], cuts=7, use_grid_fill=True)
    elif kind == "box":
        bmesh.ops.create_cube(bm, size=1.0)
        bmesh.ops.scale(bm, vec=size, verts=bm.verts)
        bmesh.ops.translate(bm, vec=(0, 0, size[2] / 2), verts=bm.verts)
    elif kind in ("cylinder", "cone"):
        r1 = size[0]
        r2 = size[0] if kind == "cylinder" else 0.0
        bmesh.ops.create_cone(bm, cap_ends=True, cap_tris=False, segments=48, radius1=r1, radius2=r2,
                              depth=size[2])
        bmesh.ops.translate(bm, vec=(0, 0, size[2] / 2), verts=bm.verts)
    elif kind == "sphere":
        bmesh.ops.create_uvsphere(bm, u_segments=48, v_segments=24, radius=size[0])
        bmesh.ops.translate(bm, vec=(0, 0, size[0]), verts=bm.verts)
        for f in bm.faces:
            f.smooth = True
    else:
        raise ValueError(kind)
    if kind != "plane":  # closed solids: outward normals
        bmesh.ops.recalc_face_normals(bm, faces=bm.faces[:])
    bm.to_mesh(me)
    bm.free()
    return me


def _build_scene(bpy, config: OrbitConfig):
    import bmesh

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    objects = []
    for i, (name, kind, verts, recipe, ca, cb, axes) in enumerate(_ROOM):
        me = _build_mesh(bpy, bmesh, name, kind, None, verts)
        ob = bpy.data.objects.new(name, me)
        me.materials.append(_make_material(bpy, "mat_" + name, recipe, ca, cb, config.seed + i, axes))
        scene.collection.objects.link(ob)
        objects.append(ob)
    for i, (name, kind, size, loc, rz, recipe, ca, cb) in enumerate(_OBJECTS):
        me = _build_mesh(bpy, bmesh, name, kind, size)
        ob = bpy.data.objects.new(name, me)
        ob.location = loc
        ob.rotation_euler = (0.0, 0.0, math.radians(rz))
        me.materials.append(_make_material(bpy, "mat_" + name, recipe, ca, cb, config.seed + 10 + i))
        scene.collection.objects.link(ob)
        objects.append(ob)
    for k, ob in enumerate(objects):
        ob.pass_index = k + 1
        ob.color = (*(_MASK_PALETTE[k + 1] / 255.0), 1.0)

    # lights: a sun from the open side, a big soft area light, a grey-blue world
    sun_data = bpy.data.lights.new("sun", "SUN")
    sun_data.energy = 1.3
    sun_data.angle = math.radians(8.0)
    sun = bpy.data.objects.new("sun", sun_data)
    sun.rotation_euler = (math.radians(40.0), 0.0, math.radians(135.0))
    scene.collection.objects.link(sun)
    area_data = bpy.data.lights.new("area", "AREA")
    area_data.energy = 45.0
    area_data.size = 2.5
    area = bpy.data.objects.new("area", area_data)
    area.location = (1.0, 1.0, 2.8)
    scene.collection.objects.link(area)
    world = bpy.data.worlds.new("world")
    scene.world = world
    if world.node_tree is None:
        world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    if bg is None:
        bg = world.node_tree.nodes.new("ShaderNodeBackground")
        wout = world.node_tree.nodes.get("World Output") or world.node_tree.nodes.new("ShaderNodeOutputWorld")
        world.node_tree.links.new(bg.outputs["Background"], wout.inputs["Surface"])
    bg.inputs["Color"].default_value = (0.55, 0.62, 0.75, 1.0)
    bg.inputs["Strength"].default_value = 0.25

    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = config.lens_mm
    cam_data.sensor_width = 36.0
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.shift_x = cam_data.shift_y = 0.0
    cam_data.clip_start, cam_data.clip_end = 0.05, 100.0
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam

    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = config.width, config.height, 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.use_border = False
    r.film_transparent = False
    r.image_settings.file_format = "PNG"
    r.image_settings.color_mode = "RGB"
    r.image_settings.color_depth = "8"
    try:
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
    except TypeError:
        pass
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    return scene, cam, objects


def _setup_cycles(scene, config: OrbitConfig) -> None:
    scene.render.engine = "CYCLES"
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples = config.samples
    cy.use_adaptive_sampling = False
    cy.seed = config.seed
    cy.use_animated_seed = False
    cy.max_bounces = 2
    cy.diffuse_bounces = 1
    cy.glossy_bounces = 1
    cy.transmission_bounces = 0
    cy.volume_bounces = 0
    cy.transparent_max_bounces = 2
    cy.caustics_reflective = cy.caustics_refractive = False
    cy.use_denoising = bool(config.denoise)
    if config.denoise:
        cy.denoiser = "OPENIMAGEDENOISE"
    cy.use_preview_denoising = False
    scene.render.use_persistent_data = True


def _setup_workbench_masks(scene) -> None:
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.render_aa = "OFF"
    sh = scene.display.shading
    sh.light = "FLAT"
    sh.color_type = "OBJECT"
    sh.show_shadows = False
    sh.show_cavity = False
    sh.show_object_outline = False
    sh.show_specular_highlight = False
    sh.background_type = "VIEWPORT"
    sh.background_color = (0.0, 0.0, 0.0)
    scene.world.color = (0.0, 0.0, 0.0)
    try:
        scene.view_settings.view_transform = "Standard"
    except TypeError:
        pass


def _decode_mask(img: np.ndarray, n_objects: int) -> np.ndarray:
    pal = _MASK_PALETTE[: n_objects + 1]
    d = ((img[..., None, :3].astype(np.float64) - pal[None, None]) ** 2).sum(-1)
    return np.argmin(d, axis=-1).astype(np.uint8)


def _sample_surfaces(bpy, objects, n: int, seed: int):
    """Uniform-by-area samples over evaluated meshes in world coordinates."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    tris, normals, owner = [], [], []
    for k, ob in enumerate(objects):
        ev = ob.evaluated_get(depsgraph)
        me = ev.to_mesh()
        try:
            me.calc_loop_triangles()
            nv = len(me.vertices)
            co = np.empty(nv * 3, np.float32)
            me.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3).astype(np.float64)
            nt = len(me.loop_triangles)
            vi = np.empty(nt * 3, np.int32)
            me.loop_triangles.foreach_get("vertices", vi)
            vi = vi.reshape(-1, 3)
        finally:
            ev.to_mesh_clear()
        M = np.array(ob.matrix_world, dtype=np.float64)
        cw = co @ M[:3, :3].T + M[:3, 3]
        t = cw[vi]  # (T,3,3)
        tris.append(t)
        nrm = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
        normals.append(nrm)
        owner.append(np.full(len(t), k + 1, np.uint8))
    tris = np.concatenate(tris)
    nrm = np.concatenate(normals)
    owner = np.concatenate(owner)
    area2 = np.linalg.norm(nrm, axis=1)
    keep = area2 > 0
    tris, nrm, owner, area2 = tris[keep], nrm[keep], owner[keep], area2[keep]
    rng = np.random.default_rng(seed + 12345)
    idx = rng.choice(len(tris), size=n, p=area2 / area2.sum())
    r1 = np.sqrt(rng.random(n))
    r2 = rng.random(n)
    a, b, c = tris[idx, 0], tris[idx, 1], tris[idx, 2]
    pts = (1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c
    nn = nrm[idx] / area2[idx, None]
    lo, hi = tris.reshape(-1, 3).min(0), tris.reshape(-1, 3).max(0)
    return pts.astype(np.float32), nn.astype(np.float32), owner[idx], float(np.linalg.norm(hi - lo))


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _render_in_process(out_dir: Path, config: OrbitConfig, progress: Optional[Callable[[str, int, int], None]]) -> Dict:
    import bpy
    from mathutils import Matrix

    t0 = time.perf_counter()
    scene, cam, objects = _build_scene(bpy, config)
    _setup_cycles(scene, config)
    poses, targets = camera_path(config)
    K = config.intrinsics()
    pts, nrm, owner, extent = _sample_surfaces(bpy, objects, config.gt_points, config.seed)
    t_setup = time.perf_counter() - t0

    wfc = np.zeros((config.frames, 4, 4), np.float64)
    frames: List[np.ndarray] = []
    tmp = Path(tempfile.mkdtemp(prefix="ov3r_orbit_png_"))
    t1 = time.perf_counter()
    frame_s: List[float] = []
    try:
        for i in range(config.frames):
            tf = time.perf_counter()
            cam.matrix_world = Matrix((poses[i] @ _FLIP_YZ).tolist())
            bpy.context.view_layer.update()
            wfc[i] = blender_to_opencv(np.array(cam.matrix_world))  # what Blender actually used
            scene.render.filepath = str(tmp / f"frame_{i:05d}.png")
            bpy.ops.render.render(write_still=True)
            frames.append(_read_png(tmp / f"frame_{i:05d}.png"))
            frame_s.append(time.perf_counter() - tf)
            if progress:
                progress("render", i + 1, config.frames)
        t_render = time.perf_counter() - t1
        masks = None
        t2 = time.perf_counter()
        if config.masks:
            scene.render.use_persistent_data = False
            _setup_workbench_masks(scene)
            masks = np.zeros((config.frames, config.height, config.width), np.uint8)
            for i in range(config.frames):
                cam.matrix_world = Matrix((poses[i] @ _FLIP_YZ).tolist())
                bpy.context.view_layer.update()
                p = tmp / f"mask_{i:05d}.png"
                scene.render.filepath = str(p)
                bpy.ops.render.render(write_still=True)
                masks[i] = _decode_mask(_read_png(p), len(objects))
                if progress:
                    progress("masks", i + 1, config.frames)
        t_masks = time.perf_counter() - t2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if frames[0].shape[:2] != (config.height, config.width):
        raise RuntimeError(f"rendered {frames[0].shape[:2]}, expected {(config.height, config.width)}")
    t3 = time.perf_counter()
    _encode_video(frames, out_dir / "video.mp4", config.fps, config.crf)
    t_encode = time.perf_counter() - t3
    names = np.array([ob.name for ob in objects])
    np.savez_compressed(
        out_dir / "cameras.npz",
        intrinsics=K.astype(np.float32),
        world_from_camera=wfc.astype(np.float32),
        timestamps=np.arange(config.frames, dtype=np.float64) / config.fps,
        look_at=targets.astype(np.float32),
        gt_points=pts,
        gt_normals=nrm,
        gt_object_index=owner,
        object_names=names,
        extent=np.float64(extent),
    )
    if masks is not None:
        np.savez_compressed(out_dir / "masks.npz", object_index=masks, object_names=names)
    timings = {
        "setup_s": t_setup,
        "render_s": t_render,
        "render_s_per_frame": t_render / config.frames,
        "render_s_first_frame": frame_s[0],
        "render_s_per_frame_after_first": float(np.mean(frame_s[1:])) if len(frame_s) > 1 else frame_s[0],
        "masks_s": t_masks,
        "encode_s": t_encode,
        "total_s": time.perf_counter() - t0,
    }
    info = {"version": ORBIT_VERSION, "config": asdict(config), "timings": timings,
            "blender": bpy.app.version_string, "object_names": names.tolist()}
    (out_dir / "config.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return info


def _package_root_and_module() -> Tuple[Path, str]:
    """(directory holding the ``core`` package, module name) for running this file in a subprocess.

    ``core`` imports on its own as a top-level package (DESIGN.md), whatever name the
    extension imported it under, so the subprocess runs ``python -m core.scenegen.orbit``.
    """
    here = Path(__file__).resolve()
    return here.parents[2], f"{here.parents[1].name}.{here.parent.name}.{here.stem}"


def render_orbit(
    out_dir: Path,
    config: OrbitConfig = OrbitConfig(),
    in_process: bool = False,
    progress: Optional[Callable[[str, int, int], None]] = None,
    python: Optional[str] = None,
) -> OrbitFixture:
    """Render the orbit fixture into ``out_dir`` (created; existing files overwritten).

    Args:
        out_dir: output directory.
        config: scene / render settings.
        in_process: render with the ``bpy`` of this interpreter (resets its scene with
            ``read_factory_settings``). Default False: run ``python -m <this module>
            --worker`` in a subprocess (``python``, default ``sys.executable``, which must
            have ``bpy``), which leaves the caller's bpy state alone.
        progress: ``progress(stage, done, total)`` callback (in-process only).

    Returns:
        the loaded :class:`OrbitFixture`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if in_process:
        _render_in_process(out_dir, config, progress)
    else:
        root, mod = _package_root_and_module()
        env = dict(os.environ)
        env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [python or sys.executable, "-m", mod, str(out_dir), "--worker", "--config-json", config.to_json()]
        proc = subprocess.run(cmd, env=env, cwd=str(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"orbit render failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return load_orbit(out_dir)


def load_orbit(root: Path) -> OrbitFixture:
    """Load a fixture directory written by :func:`render_orbit`."""
    root = Path(root)
    info = json.loads((root / "config.json").read_text())
    cfg = OrbitConfig.from_dict(info["config"])
    with np.load(root / "cameras.npz") as z:
        arr = {k: z[k] for k in z.files}
    masks = root / "masks.npz"
    return OrbitFixture(
        root=root,
        video_path=root / "video.mp4",
        cameras_path=root / "cameras.npz",
        config_path=root / "config.json",
        masks_path=masks if masks.exists() else None,
        config=cfg,
        intrinsics=arr["intrinsics"],
        world_from_camera=arr["world_from_camera"],
        timestamps=arr["timestamps"],
        look_at=arr["look_at"],
        gt_points=arr["gt_points"],
        gt_normals=arr["gt_normals"],
        gt_object_index=arr["gt_object_index"],
        object_names=[str(s) for s in arr["object_names"]],
        extent=float(arr["extent"]),
        info=info,
    )


def default_cache_root() -> Path:
    """``$OV3R_CACHE/fixtures`` if ``OV3R_CACHE`` is set, else ``~/.cache/ov3r/fixtures``."""
    return cache_dir("fixtures")


def config_hash(config: OrbitConfig) -> str:
    """SHA-256 hex of ``ORBIT_VERSION`` + the config's canonical JSON."""
    return hashlib.sha256((ORBIT_VERSION + "\n" + config.to_json()).encode()).hexdigest()


def cached_orbit(config: OrbitConfig = OrbitConfig(), cache_root: Optional[Path] = None,
                 **render_kwargs) -> OrbitFixture:
    """Render once, then reuse: ``<cache_root>/orbit-<sha256>/``.

    ``cache_root`` defaults to :func:`default_cache_root` (``$OV3R_CACHE/fixtures`` or
    ``~/.cache/ov3r/fixtures``); the key is :func:`config_hash` (config + ``ORBIT_VERSION``).

    Renders into a temporary sibling directory and renames it into place, so an
    interrupted render never leaves a half-written cache entry. ``render_kwargs`` go to
    :func:`render_orbit`.
    """
    base = Path(cache_root) if cache_root is not None else default_cache_root()
    final = base / f"orbit-{config_hash(config)}"
    if (final / "config.json").exists():
        return load_orbit(final)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name[:20]}-", dir=base))
    try:
        render_orbit(tmp, config, **render_kwargs)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").exists():  # not a concurrent winner: real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_orbit(final)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.scenegen.orbit",
                                description="Render the Ov3R ground-truth orbit fixture (Cycles, CPU).")
    p.add_argument("out_dir", type=Path, nargs="?", help="output directory (omit with --cache)")
    p.add_argument("--frames", type=int, default=OrbitConfig.frames)
    p.add_argument("--width", type=int, default=OrbitConfig.width)
    p.add_argument("--height", type=int, default=OrbitConfig.height)
    p.add_argument("--samples", type=int, default=OrbitConfig.samples)
    p.add_argument("--seed", type=int, default=OrbitConfig.seed)
    p.add_argument("--denoise", action="store_true")
    p.add_argument("--no-masks", action="store_true")
    p.add_argument("--cache", action="store_true", help="render into (or reuse) the fixture cache")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--config-json", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.config_json:
        cfg = OrbitConfig.from_dict(json.loads(a.config_json))
    else:
        cfg = OrbitConfig(width=a.width, height=a.height, frames=a.frames, samples=a.samples, seed=a.seed,
                          denoise=a.denoise, masks=not a.no_masks)
    if a.worker:
        a.out_dir.mkdir(parents=True, exist_ok=True)
        _render_in_process(a.out_dir, cfg, lambda s, d, t: print(f"[orbit] {s} {d}/{t}", flush=True))
        return 0
    if a.cache:
        fx = cached_orbit(cfg)
    elif a.out_dir is None:
        p.error("out_dir is required unless --cache")
    else:
        fx = render_orbit(a.out_dir, cfg)
    print(json.dumps({"root": str(fx.root), "frames": fx.num_frames, "timings": fx.info.get("timings")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
