"""Render a synthetic room with Blender (the only bpy module of ``core.bench``).

``render_room(config, out_dir)`` builds the room of :func:`core.scenegen.room_layout.generate_layout`
(walls, floor, ceiling, door, windows; furniture imported from the catalog OBJ/MTL files
with ``bpy.ops.wm.obj_import`` and scaled to the catalog size), walks the camera of
:func:`core.scenegen.trajectory.camera_trajectory`, renders each frame once with Cycles
(CPU) and reads RGB (PNG, view transform applied) plus the ``Depth`` (planar z) and
``Object Index`` passes (uncompressed multilayer OpenEXR, :mod:`core.scenegen.exr`).

Output folder (all arrays per frame are ``(F, H, W)``):

- ``video.mp4``      H.264 (PyAV / libx264, yuv420p) at ``config.fps``;
- ``depth.npz``      ``depth_mm`` uint16 planar depth in millimetres (0 = none);
- ``labels.npz``     ``instance`` uint16 (0 = none), ``semantic`` uint8 class ids;
- ``cameras.npz``    ``intrinsics (3,3)``, ``world_from_camera (F,4,4)`` (OpenCV), ``timestamps``;
- ``gt_cloud.npz``   ``points (P,3) f32``, ``normals``, ``colors u8``, ``instance int32``,
  ``semantic uint8``: area-uniform samples of the mesh surfaces kept where some frame sees them;
- ``classes.json``   class list (id -> name) and the instance table (id, class, model, licence);
- ``scene.json``     config, hash, layout, timings, Blender version.

By default the render runs in a subprocess (``python -m core.scenegen.room_render``) so the
caller's bpy state is left alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cache import cache_dir
from .catalog import extract_model, load_catalog
from .room_config import ROOM_VERSION, RoomConfig, config_hash
from .room_layout import RoomLayout, generate_layout
from .taxonomy import CLASSES, class_id
from .trajectory import camera_trajectory

__all__ = ["render_room", "visible_mask", "light_schedule", "FLIP_YZ", "model_cache_dir"]

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera <-> Blender camera


def model_cache_dir() -> Path:
    return cache_dir("models")


# ------------------------------------------------------------------------------- materials

def _mat_principled(bpy, name: str, color, roughness: float = 0.6, noise: Optional[Tuple] = None,
                    wave: bool = False, emission: float = 0.0):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    nt = m.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = roughness
    col = tuple(color) + (1.0,)
    if noise is not None or wave:
        tex = nt.nodes.new("ShaderNodeTexWave" if wave else "ShaderNodeTexNoise")
        tex.inputs["Scale"].default_value = noise[0] if noise else 3.0
        if wave:
            tex.inputs["Distortion"].default_value = 6.0
            tex.inputs["Detail"].default_value = 3.0
        else:
            tex.inputs["Detail"].default_value = 8.0
        ramp = nt.nodes.new("ShaderNodeValToRGB")
        c2 = tuple(max(0.0, min(1.0, c * (noise[1] if noise else 0.6))) for c in color) + (1.0,)
        ramp.color_ramp.elements[0].color = c2
        ramp.color_ramp.elements[1].color = col
        nt.links.new(tex.outputs["Fac"], ramp.inputs[0])
        nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        bsdf.inputs["Base Color"].default_value = col
    if emission > 0:
        bsdf.inputs["Emission Color"].default_value = col
        bsdf.inputs["Emission Strength"].default_value = emission
    return m


def _mesh_object(bpy, name: str, verts, faces, mat, pass_index: int):
    me = bpy.data.meshes.new(name)
    me.from_pydata([tuple(map(float, v)) for v in verts], [], [tuple(f) for f in faces])
    me.update()
    me.materials.append(mat)
    ob = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(ob)
    ob.pass_index = pass_index
    return ob


def _box(center, size, yaw=0.0):
    cx, cy, cz = center
    hx, hy, hz = np.asarray(size) / 2
    c, s = math.cos(yaw), math.sin(yaw)
    loc = np.array([[x, y, z] for z in (-hz, hz) for y in (-hy, hy) for x in (-hx, hx)])
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    v = loc @ R.T + np.array([cx, cy, cz])
    f = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return v, f


# ------------------------------------------------------------------------------- scene

def _build_structure(bpy, cfg: RoomConfig, layout: RoomLayout, rng) -> List[Dict]:
    """Floor, ceiling, walls, doors, windows; returns the instance table rows."""
    hue = rng.uniform(0, 1)
    import colorsys

    sky = {"day": ((0.75, 0.85, 1.0), 2.0), "overcast": ((0.85, 0.88, 0.92), 1.2),
           "evening": ((1.0, 0.6, 0.35), 0.8)}[cfg.lighting]
    if cfg.surfaces == "flat":  # one plain pale colour per surface: nothing for features to hold on to
        wall_rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.0, 0.06), rng.uniform(0.8, 0.9))
        floor_rgb = colorsys.hsv_to_rgb(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.2), rng.uniform(0.55, 0.75))
        m_wall = _mat_principled(bpy, "wall_paint", wall_rgb, 0.85)
        m_floor = _mat_principled(bpy, "floor_plain", floor_rgb, 0.7)
        m_ceil = _mat_principled(bpy, "ceiling", (0.9, 0.9, 0.88), 0.9)
        m_door = _mat_principled(bpy, "door_plain", colorsys.hsv_to_rgb(0.08, 0.15, rng.uniform(0.6, 0.8)), 0.6)
        m_frame = _mat_principled(bpy, "window_frame", (0.92, 0.92, 0.92), 0.4)
        m_glass = _mat_principled(bpy, "window_sky", sky[0], 0.2, emission=sky[1])
        return _structure_meshes(bpy, layout, m_wall, m_floor, m_ceil, m_door, m_frame, m_glass)
    wall_rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.05, 0.25), rng.uniform(0.7, 0.9))
    floor_rgb = colorsys.hsv_to_rgb(rng.uniform(0.05, 0.12), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.6))
    m_wall = _mat_principled(bpy, "wall_paint", wall_rgb, 0.8, noise=(rng.uniform(8, 20), 0.85))
    m_floor = _mat_principled(bpy, "floor_wood", floor_rgb, 0.45, noise=(rng.uniform(1.5, 3.0), 0.55), wave=True)
    m_ceil = _mat_principled(bpy, "ceiling", (0.9, 0.9, 0.88), 0.9, noise=(25.0, 0.93))
    m_door = _mat_principled(bpy, "door_wood", colorsys.hsv_to_rgb(0.08, 0.5, rng.uniform(0.3, 0.7)), 0.5,
                             noise=(4.0, 0.7), wave=True)
    m_frame = _mat_principled(bpy, "window_frame", (0.92, 0.92, 0.92), 0.4)
    m_glass = _mat_principled(bpy, "window_sky", sky[0], 0.2, noise=(2.0, 0.8), emission=sky[1])
    return _structure_meshes(bpy, layout, m_wall, m_floor, m_ceil, m_door, m_frame, m_glass)


def _structure_meshes(bpy, layout: RoomLayout, m_wall, m_floor, m_ceil, m_door, m_frame, m_glass) -> List[Dict]:
    H = layout.height
    poly = np.array(layout.polygon)
    n = len(poly)

    rows: List[Dict] = []

    def row(iid, cls, name):
        rows.append({"instance_id": iid, "class": cls, "class_id": class_id(cls), "name": name,
                     "model_id": None, "library": None, "creator": None, "license": None})

    iid = 1
    tri = [tuple(range(n))]
    _mesh_object(bpy, "floor", np.c_[poly, np.zeros(n)], tri, m_floor, iid)
    row(iid, "floor", "floor")
    iid += 1
    _mesh_object(bpy, "ceiling", np.c_[poly, np.full(n, H)][::-1], tri, m_ceil, iid)
    row(iid, "ceiling", "ceiling")
    iid += 1
    for k, w in enumerate(layout.walls):
        a, b = np.array(w.p0), np.array(w.p1)
        v = [(a[0], a[1], 0), (b[0], b[1], 0), (b[0], b[1], H), (a[0], a[1], H)]
        _mesh_object(bpy, f"wall_{k}", v, [(0, 1, 2, 3)], m_wall, iid)
        row(iid, "wall", f"wall_{k}")
        iid += 1
    for k, op in enumerate(layout.openings):
        w = layout.walls[op.wall]
        c = w.point(op.offset)
        nrm = np.array(w.normal)
        yaw = math.atan2(nrm[1], nrm[0]) + math.pi / 2  # box x along the wall
        if op.kind == "door":
            th = 0.04
            v, f = _box((*(c + nrm * th / 2), op.z0 + op.height / 2), (op.width, th, op.height), yaw)
            ob = _mesh_object(bpy, f"door_{k}", v, f, m_door, iid)
            hv, hf = _box((*(c + nrm * (th + 0.03) + (np.array(w.p1) - np.array(w.p0)) / w.length * op.width * 0.38),
                           1.0), (0.12, 0.05, 0.03), yaw)
            handle = _mesh_object(bpy, f"door_{k}_handle", hv, hf, m_frame, iid)
            row(iid, "door", f"door_{k}")
            del ob, handle
        else:
            th = 0.03
            v, f = _box((*(c + nrm * 0.005), op.z0 + op.height / 2), (op.width, 0.01, op.height), yaw)
            _mesh_object(bpy, f"window_{k}_glass", v, f, m_glass, iid)
            # frame: four bars and a mullion
            bars = [((0, op.z0 + 0.03), (op.width + 0.1, th * 2, 0.06)),
                    ((0, op.z0 + op.height - 0.03), (op.width + 0.1, th * 2, 0.06)),
                    ((-op.width / 2, op.z0 + op.height / 2), (0.06, th * 2, op.height)),
                    ((op.width / 2, op.z0 + op.height / 2), (0.06, th * 2, op.height)),
                    ((0, op.z0 + op.height / 2), (0.04, th * 1.5, op.height))]
            tang = (np.array(w.p1) - np.array(w.p0)) / w.length
            for j, ((u, z), sz) in enumerate(bars):
                p = c + tang * u + nrm * th
                v, f = _box((p[0], p[1], z), sz, yaw)
                _mesh_object(bpy, f"window_{k}_frame{j}", v, f, m_frame, iid)
            row(iid, "window", f"window_{k}")
        iid += 1
    return rows


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _image_mean_rgb(img) -> Optional[Tuple[float, float, float]]:
    """Mean linear RGB of an image (alpha-weighted), read at 32x32; None when it has no pixels."""
    try:
        if img.size[0] == 0 or img.size[1] == 0:
            return None
        img.scale(32, 32)
        px = np.empty(32 * 32 * img.channels, np.float32)
        img.pixels.foreach_get(px)
    except (RuntimeError, ValueError):  # missing file
        return None
    px = px.reshape(-1, img.channels).astype(np.float64)
    rgb = np.repeat(px[:, :1], 3, 1) if img.channels < 3 else px[:, :3]
    if not img.is_float and img.colorspace_settings.name == "sRGB":  # byte pixels are not linearised
        rgb = _srgb_to_linear(rgb)
    w = px[:, 3] if img.channels == 4 else np.ones(len(px))
    if w.sum() < 1e-6:
        w = np.ones(len(px))
    return tuple(float(v) for v in np.clip((rgb * w[:, None]).sum(0) / w.sum(), 0, 1))


def _flatten_material(m) -> None:
    """Make a furniture material one plain colour: the mean of its base-colour image (else its base
    colour); every image texture, normal map and bump node removed."""
    if m is None or not m.use_nodes or m.node_tree is None:
        return
    nt = m.node_tree
    bsdf = next((nd for nd in nt.nodes if nd.type == "BSDF_PRINCIPLED"), None)
    if bsdf is not None:
        col = None
        todo = [lk.from_node for lk in bsdf.inputs["Base Color"].links]
        seen = set()
        while todo and col is None:  # the first image upstream of the base colour
            nd = todo.pop(0)
            if nd.name in seen:
                continue
            seen.add(nd.name)
            if nd.type == "TEX_IMAGE" and nd.image is not None:
                col = _image_mean_rgb(nd.image)
            todo += [lk.from_node for inp in nd.inputs for lk in inp.links]
        if col is None:
            col = tuple(bsdf.inputs["Base Color"].default_value)[:3]
        for inp in bsdf.inputs:
            for lk in list(inp.links):
                nt.links.remove(lk)
        bsdf.inputs["Base Color"].default_value = tuple(col) + (1.0,)
    for nd in list(nt.nodes):
        if nd.type in ("TEX_IMAGE", "NORMAL_MAP", "BUMP"):
            nt.nodes.remove(nd)


def _import_model(bpy, obj_path: Path):
    before = set(bpy.data.objects)
    bpy.ops.wm.obj_import(filepath=str(obj_path), forward_axis="NEGATIVE_Z", up_axis="Y")
    parts = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    for o in bpy.data.objects:
        if o not in before and o.type != "MESH":
            bpy.data.objects.remove(o)
    return parts


def _parts_bbox(parts) -> Tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for o in parts:
        M = np.array(o.matrix_world)
        co = np.empty(len(o.data.vertices) * 3, np.float32)
        o.data.vertices.foreach_get("co", co)
        if not len(co):
            continue
        w = co.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3]
        lo, hi = np.minimum(lo, w.min(0)), np.maximum(hi, w.max(0))
    return lo, hi


def _place_furniture(bpy, cfg: RoomConfig, layout: RoomLayout) -> List[Dict]:
    cat = {e.id: e for e in load_catalog(cfg.libraries)}
    templates: Dict[str, list] = {}
    hidden = bpy.data.collections.new("templates")
    bpy.context.scene.collection.children.link(hidden)
    rows: List[Dict] = []
    for it in layout.items:
        e = cat[it.model_id]
        if it.model_id not in templates:
            obj = extract_model(e, model_cache_dir())
            parts = _import_model(bpy, obj)
            if cfg.surfaces == "flat":
                for m in {slot.material for o in parts for slot in o.material_slots if slot.material is not None}:
                    _flatten_material(m)
            for o in parts:
                for c in list(o.users_collection):
                    c.objects.unlink(o)
                hidden.objects.link(o)
                o.hide_render = True
            templates[it.model_id] = parts
        parts = templates[it.model_id]
        lo, hi = _parts_bbox(parts)
        ext = np.maximum(hi - lo, 1e-6)
        S = np.diag([it.size[0] / ext[0], it.size[1] / ext[1], it.size[2] / ext[2], 1.0])
        T0 = np.eye(4)
        T0[:3, 3] = -np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
        c, s = math.cos(it.yaw), math.sin(it.yaw)
        P = np.array([[c, -s, 0, it.center[0]], [s, c, 0, it.center[1]], [0, 0, 1, it.z], [0, 0, 0, 1.0]])
        from mathutils import Matrix

        for j, o in enumerate(parts):
            inst = o.copy()  # shares the mesh data and materials
            inst.name = f"{it.cls}_{it.instance_id}_{j}"
            inst.hide_render = False
            inst.matrix_world = Matrix((P @ S @ T0 @ np.array(o.matrix_world)).tolist())
            inst.pass_index = it.instance_id
            bpy.context.scene.collection.objects.link(inst)
        rows.append({"instance_id": it.instance_id, "class": it.cls, "class_id": class_id(it.cls), "name": e.name,
                     "model_id": e.id, "library": e.library, "creator": e.creator, "license": e.license})
    return rows


def _lights(bpy, cfg: RoomConfig, layout: RoomLayout, rng) -> List:
    """Ceiling panels and the world; returns the panels' light data blocks."""
    H = layout.height
    poly = np.array(layout.polygon)
    lo, hi = poly.min(0), poly.max(0)
    warm = {"day": (1.0, 0.97, 0.92), "overcast": (0.92, 0.95, 1.0), "evening": (1.0, 0.78, 0.55)}[cfg.lighting]
    power = {"day": 14.0, "overcast": 10.0, "evening": 7.0}[cfg.lighting]
    # one ceiling panel per ~6 m^2 cell, inside the floor polygon
    nx = max(1, int(round((hi[0] - lo[0]) / 2.5)))
    ny = max(1, int(round((hi[1] - lo[1]) / 2.5)))
    from .room_layout import _inside  # noqa: PLC0415

    lamps = []
    for i in range(nx):
        for j in range(ny):
            x = lo[0] + (i + 0.5) * (hi[0] - lo[0]) / nx
            y = lo[1] + (j + 0.5) * (hi[1] - lo[1]) / ny
            if not _inside(layout.polygon, np.array([[x, y]]), None) or _in_notch(layout, x, y):
                continue
            ld = bpy.data.lights.new(f"ceiling_{i}_{j}", "AREA")
            ld.shape = "RECTANGLE"
            ld.size, ld.size_y = 0.9, 0.9
            area = (hi[0] - lo[0]) * (hi[1] - lo[1]) / (nx * ny)
            ld.energy = power * area
            ld.color = warm
            ob = bpy.data.objects.new(ld.name, ld)
            ob.location = (x, y, H - 0.02)
            bpy.context.scene.collection.objects.link(ob)
            lamps.append(ld)
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    bg.inputs["Color"].default_value = (0.6, 0.65, 0.7, 1.0)
    bg.inputs["Strength"].default_value = 0.25
    bpy.context.scene.world = world
    del rng
    return lamps


def light_schedule(cfg: RoomConfig, n_lamps: int, times: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame gains for ``light_changes`` (numpy only): ``(lamps (F, n_lamps), sky (F,))``.

    Ceiling lamps switch off and on again from one frame to the next: one off spell of 1 to 2 s in
    every 4 s of video, a random half or more of the panels at a time but never all (a lone panel
    dims to a fifth), so the room darkens to about a half to a fifth, never to black. The daylight
    through the windows (their emission and the world light) swells and fades smoothly between
    0.4x and 2.5x, as a cloud passes the sun. All ones without ``light_changes``."""
    F = len(times)
    lamps = np.ones((F, n_lamps))
    sky = np.ones(F)
    if not cfg.light_changes:
        return lamps, sky
    rng = np.random.default_rng([cfg.seed, 7005])
    T = float(times[-1]) if F > 1 else 1.0
    n_spells = max(1, int(round(T / 4.0)))
    for k in range(n_spells):
        lo, hi = k * T / n_spells, (k + 1) * T / n_spells
        dur = min(rng.uniform(1.0, 2.0), 0.6 * (hi - lo))
        t0 = rng.uniform(lo + 0.15 * (hi - lo), hi - dur)
        off = (times >= t0) & (times < t0 + dur)
        if n_lamps == 1:
            lamps[off, 0] = 0.2
        elif n_lamps > 1:
            which = rng.choice(n_lamps, size=int(rng.integers((n_lamps + 1) // 2, n_lamps)), replace=False)
            lamps[np.ix_(off, which)] = 0.0
    period = rng.uniform(5.0, 9.0)
    sky = np.exp(np.log(2.5) * np.sin(2 * np.pi * times / period + rng.uniform(0, 2 * np.pi)))
    sky = np.maximum(sky, 0.4)
    return lamps, sky


def _in_notch(layout: RoomLayout, x: float, y: float) -> bool:
    if layout.shape != "L":
        return False
    cx, cy, hx, hy = layout.obstacles[0][:4]
    return abs(x - cx) < hx + 0.5 and abs(y - cy) < hy + 0.5


def _setup_render(bpy, scene, cfg: RoomConfig) -> None:
    scene.render.engine = "CYCLES"
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples = cfg.samples
    cy.use_adaptive_sampling = False
    cy.seed = cfg.seed
    cy.max_bounces = 2
    cy.diffuse_bounces = 1
    cy.glossy_bounces = 1
    cy.transmission_bounces = 1
    cy.transparent_max_bounces = 4
    cy.volume_bounces = 0
    cy.caustics_reflective = cy.caustics_refractive = False
    cy.sample_clamp_indirect = 5.0
    cy.use_denoising = bool(cfg.denoise)
    if cfg.denoise:
        cy.denoiser = "OPENIMAGEDENOISE"
        if cfg.fast_denoise:
            cy.denoising_prefilter = "FAST"
    scene.render.use_persistent_data = True
    scene.render.resolution_x, scene.render.resolution_y = cfg.width, cfg.height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    vl = scene.view_layers[0]
    vl.use_pass_z = True
    vl.use_pass_object_index = True
    try:
        scene.view_settings.view_transform = "AgX"
    except TypeError:
        pass
    scene.view_settings.exposure = 0.0


def _sample_surfaces(bpy, n: int, seed: int):
    """Area-uniform samples over every rendered mesh: points, normals, instance ids (pass_index)."""
    dg = bpy.context.evaluated_depsgraph_get()
    tris, owners = [], []
    for ob in bpy.context.scene.objects:
        if ob.type != "MESH" or ob.hide_render:
            continue
        ev = ob.evaluated_get(dg)
        me = ev.to_mesh()
        try:
            me.calc_loop_triangles()
            co = np.empty(len(me.vertices) * 3, np.float32)
            me.vertices.foreach_get("co", co)
            vi = np.empty(len(me.loop_triangles) * 3, np.int32)
            me.loop_triangles.foreach_get("vertices", vi)
        finally:
            ev.to_mesh_clear()
        if not len(vi):
            continue
        M = np.array(ob.matrix_world, np.float64)
        w = co.reshape(-1, 3).astype(np.float64) @ M[:3, :3].T + M[:3, 3]
        t = w[vi.reshape(-1, 3)]
        tris.append(t)
        owners.append(np.full(len(t), ob.pass_index, np.int32))
    tris = np.concatenate(tris)
    owners = np.concatenate(owners)
    nrm = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    a2 = np.linalg.norm(nrm, axis=1)
    keep = a2 > 1e-14
    tris, owners, nrm, a2 = tris[keep], owners[keep], nrm[keep], a2[keep]
    rng = np.random.default_rng([seed, 7003])
    idx = rng.choice(len(tris), size=n, p=a2 / a2.sum())
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    t = tris[idx]
    pts = (1 - r1)[:, None] * t[:, 0] + (r1 * (1 - r2))[:, None] * t[:, 1] + (r1 * r2)[:, None] * t[:, 2]
    return pts, nrm[idx] / a2[idx, None], owners[idx]


def visible_mask(points: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, depth_m: np.ndarray,
                 instance: Optional[np.ndarray] = None, point_instance: Optional[np.ndarray] = None,
                 rel_tol: float = 0.01, abs_tol: float = 0.015) -> Tuple[np.ndarray, np.ndarray]:
    """Which points some frame sees (depth test, and same instance when given).

    Returns ``(visible (P,) bool, first_frame (P,) int32, -1 = never)``.
    """
    P = len(points)
    vis = np.zeros(P, bool)
    first = np.full(P, -1, np.int32)
    F, H, W = depth_m.shape
    for f in range(F):
        Tcw = np.linalg.inv(world_from_camera[f])
        pc = points @ Tcw[:3, :3].T + Tcw[:3, 3]
        z = pc[:, 2]
        ok = z > 0.05
        u = np.full(P, -1, np.int64)
        v = np.full(P, -1, np.int64)
        u[ok] = np.floor(K[0, 0] * pc[ok, 0] / z[ok] + K[0, 2]).astype(np.int64)
        v[ok] = np.floor(K[1, 1] * pc[ok, 1] / z[ok] + K[1, 2]).astype(np.int64)
        ok &= (u >= 0) & (u < W) & (v >= 0) & (v < H)
        ii = np.nonzero(ok)[0]
        d = depth_m[f, v[ii], u[ii]]
        good = (d > 0) & (np.abs(d - z[ii]) < abs_tol + rel_tol * z[ii])
        if instance is not None and point_instance is not None:
            good &= instance[f, v[ii], u[ii]] == point_instance[ii]
        hit = ii[good]
        new = hit[~vis[hit]]
        first[new] = f
        vis[hit] = True
    return vis, first


def _encode_video(frames: Sequence[np.ndarray], path: Path, fps: float, crf: int) -> None:
    from ..video.writer import write_video

    write_video(path, frames, fps=fps, crf=crf, preset="medium")


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _render_in_process(cfg: RoomConfig, out_dir: Path,
                       progress: Optional[Callable[[str, int, int], None]] = None) -> Dict:
    import bpy
    from mathutils import Matrix

    from .exr import read_exr

    t0 = time.perf_counter()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    layout = generate_layout(cfg)
    poses, times = camera_trajectory(cfg, layout)
    rng = np.random.default_rng([cfg.seed, 7004])
    rows = _build_structure(bpy, cfg, layout, rng)
    rows += _place_furniture(bpy, cfg, layout)
    lamps = _lights(bpy, cfg, layout, rng)
    lamp_gain, sky_gain = light_schedule(cfg, len(lamps), times)
    lamp_energy = [ld.energy for ld in lamps]
    sky_inputs = []  # (socket, value at gain 1): window emission and the world light
    if cfg.light_changes:
        glass = bpy.data.materials.get("window_sky")
        if glass is not None:
            g = next(nd for nd in glass.node_tree.nodes if nd.type == "BSDF_PRINCIPLED").inputs["Emission Strength"]
            sky_inputs.append((g, g.default_value))
        bg = scene.world.node_tree.nodes.get("Background").inputs["Strength"]
        sky_inputs.append((bg, bg.default_value))
    cam_data = bpy.data.cameras.new("camera")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = 36.0
    cam_data.lens = cfg.lens_mm
    cam_data.clip_start = 0.05
    cam_data.clip_end = 100.0
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    _setup_render(bpy, scene, cfg)
    K = cfg.intrinsics()
    t_setup = time.perf_counter() - t0

    F, H, W = cfg.frames, cfg.height, cfg.width
    depth = np.zeros((F, H, W), np.float32)
    inst = np.zeros((F, H, W), np.uint16)
    frames: List[np.ndarray] = []
    wfc = np.zeros((F, 4, 4))
    tmp = Path(tempfile.mkdtemp(prefix="ov3r_room_"))
    ims = scene.render.image_settings
    t1 = time.perf_counter()
    frame_s = []
    try:
        for i in range(F):
            tf = time.perf_counter()
            cam.matrix_world = Matrix((poses[i] @ FLIP_YZ).tolist())
            if cfg.light_changes:
                for ld, e0, gn in zip(lamps, lamp_energy, lamp_gain[i]):
                    ld.energy = e0 * float(gn)
                for sock, v0 in sky_inputs:
                    sock.default_value = v0 * float(sky_gain[i])
            bpy.context.view_layer.update()
            wfc[i] = np.array(cam.matrix_world) @ FLIP_YZ
            ims.media_type = "IMAGE"
            ims.file_format = "PNG"
            ims.color_mode = "RGB"
            ims.color_depth = "8"
            scene.render.filepath = str(tmp / "rgb.png")
            bpy.ops.render.render(write_still=True)
            frames.append(_read_png(tmp / "rgb.png").copy())
            ims.media_type = "MULTI_LAYER_IMAGE"
            ims.file_format = "OPEN_EXR_MULTILAYER"
            ims.exr_codec = "NONE"
            ims.color_depth = "32"
            bpy.data.images["Render Result"].save_render(str(tmp / "passes.exr"))
            ch = read_exr(tmp / "passes.exr")
            z = next(v for k, v in ch.items() if k.endswith("Depth.Z"))
            idx = next(v for k, v in ch.items() if k.endswith("Object Index.X"))
            z = np.where(z < 1e3, z, 0.0)
            depth[i] = z
            inst[i] = np.rint(idx).astype(np.uint16)
            frame_s.append(time.perf_counter() - tf)
            if progress:
                progress("render", i + 1, F)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t_render = time.perf_counter() - t1
    if frames[0].shape[:2] != (H, W):
        raise RuntimeError(f"rendered {frames[0].shape[:2]}, expected {(H, W)}")

    t2 = time.perf_counter()
    lut = np.zeros(int(max(r["instance_id"] for r in rows)) + 1, np.uint8)
    for r in rows:
        lut[r["instance_id"]] = r["class_id"]
    semantic = lut[np.minimum(inst, len(lut) - 1)]
    pts, nrm, owner = _sample_surfaces(bpy, cfg.gt_points, cfg.seed)
    vis, first = visible_mask(pts, K, wfc, depth, inst, owner)
    pts, nrm, owner, first = pts[vis], nrm[vis], owner[vis], first[vis]
    # colour = the pixel of the first frame that sees the point
    colors = np.zeros((len(pts), 3), np.uint8)
    frames_arr = np.stack(frames)
    for f in np.unique(first):
        sel = first == f
        Tcw = np.linalg.inv(wfc[f])
        pc = pts[sel] @ Tcw[:3, :3].T + Tcw[:3, 3]
        u = np.clip(np.floor(K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2]).astype(int), 0, W - 1)
        v = np.clip(np.floor(K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]).astype(int), 0, H - 1)
        colors[sel] = frames_arr[f, v, u]
    t_gt = time.perf_counter() - t2

    t3 = time.perf_counter()
    _encode_video(frames, out_dir / "video.mp4", cfg.fps, cfg.crf)
    t_encode = time.perf_counter() - t3
    np.savez_compressed(out_dir / "depth.npz", depth_mm=np.clip(np.rint(depth * 1000), 0, 65535).astype(np.uint16))
    np.savez_compressed(out_dir / "labels.npz", instance=inst, semantic=semantic)
    np.savez(out_dir / "cameras.npz", intrinsics=K, world_from_camera=wfc, timestamps=times)
    np.savez_compressed(out_dir / "gt_cloud.npz", points=pts.astype(np.float32), normals=nrm.astype(np.float32),
                        colors=colors, instance=owner.astype(np.int32), semantic=lut[owner].astype(np.uint8))
    classes = {"classes": CLASSES, "instances": rows}
    (out_dir / "classes.json").write_text(json.dumps(classes, indent=1))
    timings = {"setup_s": t_setup, "render_s": t_render, "render_s_per_frame": t_render / F,
               "render_s_first_frame": frame_s[0],
               "render_s_per_frame_after_first": float(np.mean(frame_s[1:])) if F > 1 else frame_s[0],
               "gt_s": t_gt, "encode_s": t_encode, "total_s": time.perf_counter() - t0}
    info = {"version": ROOM_VERSION, "hash": config_hash(cfg), "config": cfg.to_dict(), "layout": layout.to_dict(),
            "timings": timings, "blender": bpy.app.version_string, "gt_points_visible": int(len(pts))}
    if cfg.light_changes:
        info["light_gains"] = {"lamps": lamp_gain.round(3).tolist(), "sky": sky_gain.round(3).tolist()}
    (out_dir / "scene.json").write_text(json.dumps(info, indent=1))
    return info


def _package_root_and_module() -> Tuple[Path, str]:
    here = Path(__file__).resolve()
    return here.parents[2], f"{here.parents[1].name}.{here.parent.name}.{here.stem}"


def render_room(cfg: RoomConfig, out_dir: Path, in_process: bool = False, python: Optional[str] = None,
                progress: Optional[Callable[[str, int, int], None]] = None, log=None) -> Dict:
    """Render ``cfg`` into ``out_dir`` (created). Returns the ``scene.json`` dict.

    ``in_process=False`` (default) runs ``python -m core.scenegen.room_render`` with
    ``python`` (default ``sys.executable``, which must have ``bpy``); ``log``: a file
    object receiving the subprocess output (default: captured, shown on failure).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if in_process:
        return _render_in_process(cfg, out_dir, progress)
    root, mod = _package_root_and_module()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [python or sys.executable, "-m", mod, str(out_dir), "--config-json", cfg.to_json()]
    if log is not None:
        proc = subprocess.run(cmd, env=env, cwd=str(root), stdout=log, stderr=subprocess.STDOUT, text=True)
        out = ""
    else:
        proc = subprocess.run(cmd, env=env, cwd=str(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"room render failed ({proc.returncode}):\n{out[-4000:]}")
    return json.loads((out_dir / "scene.json").read_text())


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.scenegen.room_render", description="Render one synthetic room.")
    p.add_argument("out_dir", type=Path)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config-json", help="the scene config as a JSON string")
    g.add_argument("--config", type=Path, help="a scene config JSON file")
    a = p.parse_args(argv)
    cfg = RoomConfig.from_json(a.config_json) if a.config_json else RoomConfig.from_json(a.config.read_text())

    def prog(stage, done, total):
        if done == 1 or done == total or done % 10 == 0:
            print(f"[{time.strftime('%H:%M:%S')}] {cfg.name} {stage} {done}/{total}", flush=True)

    a.out_dir.mkdir(parents=True, exist_ok=True)
    info = _render_in_process(cfg, a.out_dir, prog)
    print(json.dumps(info["timings"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
