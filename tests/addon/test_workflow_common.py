"""Shared by the workflow tests (no tests here): a small labelled room scene whose segment
descriptors live in the stand-in encoder's space, and helpers to build it in Blender."""

from __future__ import annotations

import numpy as np
from conftest import bpy
from ov3r.core.query_worker import HashEncoder
from ov3r.core.scene import Cameras, Segments, SemanticScene
from ov3r.core.semantics.text_encoder import prompt

LABELS = ["sofa", "chair", "table", "lamp", "floor"]
CENTERS = np.array([[1.0, 2.0, 0.45], [-1.0, 1.0, 0.5], [0.0, 0.0, 0.4], [2.0, -1.0, 0.9], [0.0, 0.0, 0.0]])
EXTENTS = np.array([[2.0, 0.9, 0.9], [0.5, 0.5, 1.0], [1.2, 0.8, 0.8], [0.3, 0.3, 1.8], [6.0, 5.0, 0.02]])


def room_scene(n_per: int = 200, noise_points: int = 100, encoder=None, seed: int = 0) -> SemanticScene:
    """5 box-shaped segments + unsegmented points; descriptor i = the encoder's prompt(label i)."""
    rng = np.random.default_rng(seed)
    encoder = encoder or HashEncoder()
    pts, seg = [], []
    for i, (c, e) in enumerate(zip(CENTERS, EXTENTS)):
        pts.append(c + (rng.random((n_per, 3)) - 0.5) * e)
        seg.append(np.full(n_per, i, np.int32))
    pts.append(rng.standard_normal((noise_points, 3)) * 2)
    seg.append(np.full(noise_points, -1, np.int32))
    points = np.concatenate(pts).astype(np.float32)
    segment_id = np.concatenate(seg)
    n, s = len(points), len(LABELS)
    desc = np.asarray(encoder.encode([prompt(w) for w in LABELS]), np.float32)
    desc += rng.standard_normal(desc.shape).astype(np.float32) * 0.01
    m = 3
    wfc = np.repeat(np.eye(4, dtype=np.float32)[None], m, 0)
    wfc[:, :3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float32)  # looking along +Y, up +Z
    wfc[:, :3, 3] = [[0, -3, 1.5], [1, -3, 1.5], [2, -3, 1.5]]
    K = np.array([[300, 0, 160], [0, 300, 120], [0, 0, 1]], np.float32)
    cams = Cameras(np.repeat(K[None], m, 0), wfc, np.arange(m) * 0.5, np.arange(m, dtype=np.int32), (320, 240))
    segs = Segments(
        descriptor=desc, point_count=np.bincount(segment_id[segment_id >= 0], minlength=s).astype(np.int32),
        centroid=CENTERS.astype(np.float32), box_center=CENTERS.astype(np.float32),
        box_axes=np.repeat(np.eye(3, dtype=np.float32)[None], s, 0), box_extent=EXTENTS.astype(np.float32),
        label=[""] * s, score=np.zeros(s, np.float32),
    )
    return SemanticScene(points=points, colors=rng.integers(0, 256, (n, 3)).astype(np.uint8),
                         confidence=rng.random(n).astype(np.float32), segment_id=segment_id,
                         frame_id=np.zeros(n, np.int32), cameras=cams, segments=segs,
                         metadata={"engine": "test", "text_space": "hash-words",
                                   "video": {"fps": 30.0}}).validate()


def build(scene: SemanticScene | None = None, name: str = "salon") -> bpy.types.Object:
    from ov3r.ov3r_addon import scene_builder

    scene = scene or room_scene()
    built = scene_builder.build_scene(scene, scene_path=f"/tmp/{name}.ov3r.npz")
    obj = built.points_object()
    scene_builder.make_active(obj)
    return obj


def snapshot(obj: bpy.types.Object) -> dict:
    """Everything an operator might change on a scan (to assert "nothing changed")."""
    from ov3r.ov3r_addon import point_attrs

    mesh = obj.data
    out = {name: point_attrs.read(mesh, name).copy() for name in point_attrs.point_attribute_names(mesh)}
    out[".select_vert"] = point_attrs.selection(mesh).copy()
    out["keys"] = sorted(obj.keys())
    out["objects"] = sorted(o.name for o in bpy.data.objects)
    return out


def assert_unchanged(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for k in before:
        if isinstance(before[k], np.ndarray):
            assert np.array_equal(before[k], after[k]), k
        else:
            assert before[k] == after[k], k


def use_stand_in():
    from ov3r.ov3r_addon import query_client

    query_client.set_encoder_override(HashEncoder())
    return query_client
