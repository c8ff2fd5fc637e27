"""SemanticScene points <-> mesh vertices with point attributes (fast foreach_set paths).

Attributes (domain POINT): ``color`` BYTE_COLOR (sRGB bytes, exact round trip of uint8),
``segment_id`` INT, ``confidence`` FLOAT, ``frame_id`` INT.

Note: a Python reference to a mesh attribute becomes invalid once another attribute is
added to the mesh (Blender reallocates), so attributes are always looked up by name.
"""

from __future__ import annotations

import bpy
import numpy as np

COLOR = "color"
INT_ATTRS = ("segment_id", "frame_id")
FLOAT_ATTRS = ("confidence",)


def new_points_mesh(name: str, points: np.ndarray, colors: np.ndarray, confidence: np.ndarray,
                    segment_id: np.ndarray, frame_id: np.ndarray) -> bpy.types.Mesh:
    """A vertex-only mesh; 1M points take about 0.1 s."""
    n = int(points.shape[0])
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(n)
    if n:
        mesh.attributes["position"].data.foreach_set("vector", np.ascontiguousarray(points, np.float32).ravel())
    rgba = np.ones((n, 4), np.float32)
    rgba[:, :3] = np.asarray(colors, np.float32) / np.float32(255.0)
    mesh.color_attributes.new(COLOR, "BYTE_COLOR", "POINT")
    mesh.color_attributes[COLOR].data.foreach_set("color_srgb", rgba.ravel())
    values = {"segment_id": segment_id, "frame_id": frame_id, "confidence": confidence}
    for attr in INT_ATTRS:
        mesh.attributes.new(attr, "INT", "POINT")
    for attr in FLOAT_ATTRS:
        mesh.attributes.new(attr, "FLOAT", "POINT")
    for attr in INT_ATTRS:
        mesh.attributes[attr].data.foreach_set("value", np.ascontiguousarray(values[attr], np.int32))
    for attr in FLOAT_ATTRS:
        mesh.attributes[attr].data.foreach_set("value", np.ascontiguousarray(values[attr], np.float32))
    color_attr = mesh.color_attributes[COLOR]
    mesh.color_attributes.active_color = color_attr
    mesh.color_attributes.render_color_index = mesh.color_attributes.find(COLOR)
    mesh.update()
    return mesh


def read_points(mesh: bpy.types.Mesh) -> dict[str, np.ndarray]:
    """Arrays back from a mesh built by ``new_points_mesh`` (same names as SemanticScene)."""
    n = len(mesh.vertices)
    points = np.empty(n * 3, np.float32)
    mesh.attributes["position"].data.foreach_get("vector", points)
    rgba = np.empty(n * 4, np.float32)
    mesh.color_attributes[COLOR].data.foreach_get("color_srgb", rgba)
    out = {
        "points": points.reshape(n, 3),
        "colors": np.rint(rgba.reshape(n, 4)[:, :3] * 255.0).astype(np.uint8),
    }
    for attr in INT_ATTRS:
        arr = np.empty(n, np.int32)
        mesh.attributes[attr].data.foreach_get("value", arr)
        out[attr] = arr
    for attr in FLOAT_ATTRS:
        arr = np.empty(n, np.float32)
        mesh.attributes[attr].data.foreach_get("value", arr)
        out[attr] = arr
    return out
