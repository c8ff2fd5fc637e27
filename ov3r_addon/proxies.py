"""Blocking proxies: one oriented box per segment (or per label) from the stored segment
boxes (box_center, box_axes rows, box_extent full sizes), named by its label, in the
collection "Ov3R proxies <scan>". Each box is a unit cube scaled by its object transform,
so artists edit it like any box."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from . import blend_storage, point_attrs, scan_labels

_CUBE_V = [(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]
_CUBE_F = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def collection_name(obj: bpy.types.Object) -> str:
    return f"Ov3R proxies {obj.name}"


def box_matrix(center: np.ndarray, axes_rows: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Unit cube -> the oriented box (4x4); a left-handed axis set is flipped."""
    r = np.asarray(axes_rows, np.float64).T.copy()
    if np.linalg.det(r) < 0:
        r[:, 2] *= -1
    m = np.eye(4)
    m[:3, :3] = r * np.maximum(np.asarray(extent, np.float64), 1e-4)
    m[:3, 3] = center
    return m


def label_box(center: np.ndarray, axes: np.ndarray, extent: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One box around several segment boxes: the axes of the biggest, sized to every corner."""
    ref = np.asarray(axes[int(np.argmax(weights))], np.float64)
    corners = []
    for c, a, e in zip(center, axes, extent):
        for sx in (-0.5, 0.5):
            for sy in (-0.5, 0.5):
                for sz in (-0.5, 0.5):
                    corners.append(c + (np.array([sx, sy, sz]) * e) @ a)
    local = np.asarray(corners) @ ref.T
    lo, hi = local.min(0), local.max(0)
    return box_matrix(((lo + hi) / 2) @ ref, ref, hi - lo)


def make_proxies(obj: bpy.types.Object, mode: str = "SEGMENT", min_points: int = 1) -> list[bpy.types.Object]:
    seg = blend_storage.read_segments(obj)
    if len(seg) == 0:
        raise ValueError(f"{obj.name!r} has no segments to make proxies from")
    ids = point_attrs.read(obj.data, "segment_id")
    counts = np.bincount(ids[ids >= 0], minlength=len(seg))[: len(seg)] if ids is not None else seg.point_count
    keep = np.flatnonzero(counts >= min_points)
    if not len(keep):
        raise ValueError(f"no segment has at least {min_points} points")
    names = scan_labels.label_names(obj)
    colors = scan_labels.label_colors(obj)
    color_of = {n: colors[i] for i, n in enumerate(names)}
    coll = _fresh_collection(collection_name(obj))
    boxes: list[tuple[str, np.ndarray, str]] = []
    if mode == "LABEL":
        groups: dict[str, list[int]] = {}
        for i in keep:
            groups.setdefault(seg.label[i] or "unlabeled", []).append(int(i))
        for label, idx in groups.items():
            boxes.append((label, label_box(seg.box_center[idx], seg.box_axes[idx], seg.box_extent[idx],
                                           counts[idx]), label))
    else:
        for i in keep:
            label = seg.label[i]
            boxes.append((f"{label or 'segment'} {i}", box_matrix(seg.box_center[i], seg.box_axes[i],
                                                                  seg.box_extent[i]), label))
    out = []
    world = np.array(obj.matrix_world)
    for name, m, label in boxes:
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata(_CUBE_V, [], _CUBE_F)
        proxy = bpy.data.objects.new(name, mesh)
        coll.objects.link(proxy)
        proxy.matrix_world = Matrix((world @ m).tolist())
        proxy["ov3r_proxy"] = {"label": label, "scan": obj.name}
        rgb = color_of.get(label)
        proxy.color = (*(rgb if rgb is not None else (0.6, 0.6, 0.6)), 1.0)
        out.append(proxy)
    return out


def _fresh_collection(name: str) -> bpy.types.Collection:
    coll = bpy.data.collections.get(name)
    if coll is not None:  # make again = replace
        for o in list(coll.objects):
            data = o.data
            bpy.data.objects.remove(o, do_unlink=True)
            if data is not None and data.users == 0:
                bpy.data.meshes.remove(data)
    else:
        coll = bpy.data.collections.new(name)
    if coll.name not in {c.name for c in bpy.context.scene.collection.children_recursive}:
        bpy.context.scene.collection.children.link(coll)
    return coll


def proxy_collection(obj: bpy.types.Object) -> bpy.types.Collection | None:
    return bpy.data.collections.get(collection_name(obj))
