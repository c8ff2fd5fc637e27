"""Alignment + real-world scale in Blender on a rendered benchmark room (GT cloud and GT
cameras as the scene, moved by an arbitrary similarity as a reconstruction would be):
import with "Align to Floor" puts the floor within 2 degrees of the XY plane at Z=0;
"Set Real Scale" from one known distance (two selected points) gives the room's
dimensions within 3%; the camera and the proxies follow."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import REPO, bpy

sys.path.insert(0, str(REPO / "bench"))
from gt_scene import gt_semantic_scene
from ov3r.core.query_worker import HashEncoder
from ov3r.core.scene import save_scene
from ov3r.core.scene.align import transform_scene
from ov3r.ov3r_addon import blend_storage, point_attrs, proxies


@pytest.fixture(scope="module")
def bench_scene():
    from ov3r.core.scenegen.suite import cached_scene, test_suite

    return gt_semantic_scene(cached_scene(test_suite(frames=4)[0]), encoder=HashEncoder())


def _moved(scene):
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = 0.43 * q, [1.5, -2.0, 0.7]
    return transform_scene(scene, t)


def _dims(p):
    return np.percentile(p, 99.8, 0) - np.percentile(p, 0.2, 0)


def test_import_aligns_and_scale_from_two_points(registered_addon, bench_scene, tmp_path):
    moved = _moved(bench_scene)
    path = save_scene(moved, tmp_path / "salon mesuré.ov3r.npz")
    assert bpy.ops.ov3r.import_scene(filepath=str(path), align=True) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    pos = point_attrs.read(obj.data, "position")
    labels = bench_scene.metadata["bench"]["gt_labels"]
    floor_segs = [i for i, w in enumerate(labels) if w == "floor"]
    floor = np.isin(bench_scene.segment_id, floor_segs)
    f = pos[floor] - pos[floor].mean(0)
    tilt = np.degrees(np.arccos(abs(np.linalg.svd(f, full_matrices=False)[2][2][2])))
    assert tilt < 2.0
    assert abs(np.median(pos[floor, 2])) < 0.01 * np.ptp(pos, 0).max()
    # Blocking proxies now, to see them follow the scale.
    seg = blend_storage.read_segments(obj)
    seg_labels = list(seg.label)
    assert bpy.ops.ov3r.make_proxies(mode="SEGMENT", min_points=1) == {"FINISHED"}
    # One known distance: two picked points (selected vertices), their true distance.
    gt = bench_scene.points.astype(np.float64)
    i, j = int(np.argmin(gt[:, 0] + gt[:, 1])), int(np.argmax(gt[:, 0] + gt[:, 1]))
    sel = np.zeros(len(pos), bool)
    sel[[i, j]] = True
    point_attrs.set_selection(obj.data, sel)
    bpy.ops.object.mode_set(mode="EDIT")
    assert bpy.ops.ov3r.set_scale(source="VERTICES", distance=float(np.linalg.norm(gt[i] - gt[j]))) == {"FINISHED"}
    bpy.ops.object.mode_set(mode="OBJECT")
    pos = point_attrs.read(obj.data, "position")
    dims, true = _dims(pos), _dims(gt)
    assert dims[2] == pytest.approx(true[2], rel=0.03)
    assert dims[:2] == pytest.approx(true[:2], rel=0.03) or dims[1::-1] == pytest.approx(true[:2], rel=0.03)
    # The camera path and the proxies are in the same metric, floor-aligned frame.
    cams = blend_storage.read_cameras(obj).world_from_camera
    true_heights = bench_scene.cameras.world_from_camera[:, 2, 3]
    assert np.allclose(cams[:, 2, 3], true_heights, atol=0.03 * true[2])
    # ... and so is the animated camera: at each keyframe's frame it sits on the stored pose
    cam = bpy.data.objects[obj["ov3r"]["camera"]]
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    for k in (0, len(cams) - 1):
        bpy.context.scene.frame_set(1 + int(round(bench_scene.cameras.timestamps[k] * fps)))
        assert np.allclose(np.array(cam.matrix_world)[:3, 3], cams[k, :3, 3], atol=1e-3)
    coll = proxies.proxy_collection(obj)
    biggest = int(np.argmax(np.prod(bench_scene.segments.box_extent, 1)))
    box = coll.objects[f"{seg_labels[biggest] or 'segment'} {biggest}"]
    assert sorted(box.dimensions) == pytest.approx(sorted(bench_scene.segments.box_extent[biggest]), rel=0.03,
                                                   abs=0.02)
