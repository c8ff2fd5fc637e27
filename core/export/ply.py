"""Binary little-endian PLY with the scene's per-point attributes.

Vertex properties: x y z (float), red green blue (uchar), confidence (float),
segment_id (int), frame_id (int). Readers that do not know the extra properties
(MeshLab, CloudCompare, Blender's PLY importer) still read positions and colours.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..scene import SemanticScene

_FIELDS = [
    ("x", "<f4", "float"),
    ("y", "<f4", "float"),
    ("z", "<f4", "float"),
    ("red", "u1", "uchar"),
    ("green", "u1", "uchar"),
    ("blue", "u1", "uchar"),
    ("confidence", "<f4", "float"),
    ("segment_id", "<i4", "int"),
    ("frame_id", "<i4", "int"),
]


def write_ply(scene: SemanticScene, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(scene)
    rec = np.empty(n, dtype=[(name, dt) for name, dt, _ in _FIELDS])
    rec["x"], rec["y"], rec["z"] = scene.points.T
    rec["red"], rec["green"], rec["blue"] = scene.colors.T
    rec["confidence"] = scene.confidence
    rec["segment_id"] = scene.segment_id
    rec["frame_id"] = scene.frame_id
    header = ["ply", "format binary_little_endian 1.0", "comment made by Ov3R", f"element vertex {n}"]
    header += [f"property {ply} {name}" for name, _, ply in _FIELDS]
    header.append("end_header")
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(rec.tobytes())
    return path


_PLY_TYPES = {"float": "<f4", "float32": "<f4", "double": "<f8", "uchar": "u1", "uint8": "u1",
              "int": "<i4", "int32": "<i4", "uint": "<u4", "short": "<i2", "ushort": "<u2", "char": "i1"}


def read_ply_vertices(path: str | os.PathLike) -> np.ndarray:
    """Read the vertex element of a binary little-endian PLY as a structured array."""
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise ValueError(f"{path}: not a PLY file")
        props: list[tuple[str, str]] = []
        n = 0
        in_vertex = False
        fmt = ""
        while True:
            line = f.readline().decode("ascii").strip()
            if line == "end_header":
                break
            parts = line.split()
            if parts[0] == "format":
                fmt = parts[1]
            elif parts[0] == "element":
                in_vertex = parts[1] == "vertex"
                if in_vertex:
                    n = int(parts[2])
            elif parts[0] == "property" and in_vertex:
                props.append((parts[2], _PLY_TYPES[parts[1]]))
        if fmt != "binary_little_endian":
            raise ValueError(f"{path}: only binary_little_endian PLY is supported, got {fmt}")
        return np.frombuffer(f.read(n * np.dtype(props).itemsize), dtype=props, count=n)
