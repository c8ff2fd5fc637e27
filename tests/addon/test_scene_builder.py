"""SemanticScene -> Blender objects, in the real bpy module: attributes round-trip exactly,
Geometry Nodes display, the animated camera (pose, lens, projection), the video as the
camera background, and everything survives save + reopen of the .blend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import bpy, evaluated_points, make_scene

from ov3r.ov3r_addon import blend_storage, camera_path, point_display, scene_builder

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)

FPS = 30.0


def _video(tmp_path, name="vidéo de la pièce.mp4", frames=40, size=(64, 48)):
    """A real H.264 file written with PyAV (not core.video: that package needs OpenCV, which the
    per-version Blender venvs lack)."""
    import av

    path = tmp_path / name
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return str(path)


def _assert_scene_equal(a, b):
    for key in ("points", "colors", "confidence", "segment_id", "frame_id"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype and np.array_equal(x, y), key
    for key in ("intrinsics", "world_from_camera", "timestamps", "frame_index"):
        assert np.array_equal(getattr(a.cameras, key), getattr(b.cameras, key)), key
    assert tuple(a.cameras.image_size) == tuple(b.cameras.image_size)
    for key in ("descriptor", "point_count", "centroid", "box_center", "box_axes", "box_extent", "score"):
        x, y = getattr(a.segments, key), getattr(b.segments, key)
        assert x.dtype == y.dtype and np.array_equal(x, y), key
    assert a.segments.label == b.segments.label
    assert a.metadata == b.metadata


def _check_built(scene, built: scene_builder.BuiltScene, video_path: str, point_size: float):
    obj = bpy.data.objects[built.points]
    assert obj.users_collection[0].name == built.collection == "Ov3R vidéo de la pièce"
    mesh = obj.data
    assert len(mesh.vertices) == len(scene)
    assert mesh.color_attributes["color"].data_type == "BYTE_COLOR"
    assert mesh.color_attributes["color"].domain == "POINT"
    assert mesh.attributes["segment_id"].data_type == "INT"
    assert mesh.attributes["frame_id"].data_type == "INT"
    assert mesh.attributes["confidence"].data_type == "FLOAT"
    _assert_scene_equal(scene, blend_storage.scene_from_object(obj))

    info = blend_storage.info(obj)
    assert info["video_path"] == video_path and info["keyframes"] == len(scene.cameras)
    assert info["point_count"] == len(scene) and info["engine"] == "sfm"

    # Geometry Nodes "Mesh to Points" with the point size, and the colour material.
    mod = point_display.points_modifier(obj)
    assert mod is not None and mod.node_group.name == point_display.NODE_GROUP_NAME
    assert any(n.bl_idname == "GeometryNodeMeshToPoints" for n in mod.node_group.nodes)
    assert point_display.get_point_size(obj) == pytest.approx(point_size)
    count, attrs, materials = evaluated_points(obj, {"radius": ("value", 1),
                                                     point_display.SHADING_COLOR: ("color_srgb", 4)})
    assert count == len(scene)
    assert np.allclose(attrs["radius"], point_size)
    assert materials[0] == point_display.MATERIAL_NAME
    mat = bpy.data.materials[materials[0]]
    attr_nodes = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeAttribute"]
    assert attr_nodes and attr_nodes[0].attribute_name == point_display.SHADING_COLOR
    assert attr_nodes[0].outputs["Color"].is_linked
    # The shading copy on the evaluated points equals the scene's colours (sRGB -> linear).
    assert np.abs(attrs[point_display.SHADING_COLOR][:, :3] * 255 - scene.colors).max() < 1.0

    _check_camera(scene, built)


def _check_camera(scene, built):
    from bpy_extras.object_utils import world_to_camera_view

    bl_scene = bpy.context.scene
    cam = bpy.data.objects[built.camera]
    assert cam.type == "CAMERA" and bl_scene.camera == cam
    assert bl_scene.render.fps / bl_scene.render.fps_base == pytest.approx(FPS)
    assert bl_scene.frame_start == 1 and bl_scene.frame_end >= 1 + math.ceil(scene.cameras.timestamps[-1] * FPS)
    w, h = scene.cameras.image_size
    assert bl_scene.render.resolution_x / bl_scene.render.resolution_y == pytest.approx(w / h)
    K = scene.cameras.intrinsics[0].astype(np.float64)
    if w >= h:
        assert cam.data.lens == pytest.approx(K[0, 0] * 36.0 / w, rel=1e-6)

    rng = np.random.default_rng(5)
    for i, t in enumerate(scene.cameras.timestamps):
        frame = 1 + t * FPS
        bl_scene.frame_set(int(math.floor(frame)), subframe=float(frame - math.floor(frame)))
        T = scene.cameras.world_from_camera[i].astype(np.float64)
        M = np.array(cam.matrix_world)
        assert np.allclose(M[:3, 3], T[:3, 3], atol=1e-5), "camera centre"
        assert np.allclose(-M[:3, 2], T[:3, 2], atol=1e-5), "looks along OpenCV +Z"
        assert np.allclose(-M[:3, 1], T[:3, 1], atol=1e-5), "image down = OpenCV +Y"
        # A point in front of the camera projects to the same pixel as with OpenCV's K.
        p_cam = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.4, 0.4), rng.uniform(1.0, 4.0)])
        p_world = T[:3, :3] @ p_cam + T[:3, 3]
        uv = K @ p_cam
        u, v = uv[0] / uv[2], uv[1] / uv[2]
        from mathutils import Vector

        ndc = world_to_camera_view(bl_scene, cam, Vector(p_world.tolist()))
        assert ndc.x * w == pytest.approx(u, abs=1e-3) and (1.0 - ndc.y) * h == pytest.approx(v, abs=1e-3)
    assert cam.get("ov3r", {}).get("keyframes") == len(scene.cameras)


def test_lens_from_intrinsics_portrait_and_landscape():
    K = np.array([[400.0, 0, 200.0], [0, 400.0, 350.0], [0, 0, 1]])
    p = camera_path.lens_from_intrinsics(K, (360, 640))
    assert p.sensor_fit == "VERTICAL" and p.lens == pytest.approx(400 * 36 / 640)
    assert p.shift_x == pytest.approx((180 - 200) / 640) and p.shift_y == pytest.approx((350 - 320) / 640)
    p = camera_path.lens_from_intrinsics(K, (640, 360))
    assert p.sensor_fit == "HORIZONTAL" and p.sensor_height == pytest.approx(36 * 360 / 640)


def test_build_roundtrip_save_and_reopen(tmp_path):
    scene = make_scene(n=2000, m=4, s=5)
    video = _video(tmp_path)
    built = scene_builder.build_scene(scene, video_path=video, scene_path=str(tmp_path / "x.ov3r.npz"),
                                      point_size=0.02)
    _check_built(scene, built, video, 0.02)
    cam = bpy.data.objects[built.camera]
    bg = cam.data.background_images[0]
    assert cam.data.show_background_images and bg.source == "MOVIE_CLIP" and bg.clip is not None
    assert bpy.path.abspath(bg.clip.filepath) == video and bg.clip.frame_start == 1
    assert bg.clip.frame_duration == 40

    blend = tmp_path / "dossier à espaces" / "scène ünïcode test.blend"
    blend.parent.mkdir()
    assert bpy.ops.wm.save_as_mainfile(filepath=str(blend)) == {"FINISHED"}
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert built.points not in bpy.data.objects
    assert bpy.ops.wm.open_mainfile(filepath=str(blend)) == {"FINISHED"}
    _check_built(scene, built, video, 0.02)
    assert bpy.data.objects[built.camera].data.background_images[0].clip.frame_duration == 40


def test_update_in_place_and_remove():
    small, big = make_scene(n=100, m=2, seed=1), make_scene(n=400, m=3, seed=2)
    built = scene_builder.build_scene(small, video_path="/nonexistent/vidéo de la pièce.mp4", final=False)
    assert len(bpy.data.objects[built.points].data.vertices) == 100
    assert blend_storage.info(bpy.data.objects[built.points])["partial"] is True
    built2 = scene_builder.build_scene(big, video_path="/nonexistent/vidéo de la pièce.mp4", built=built)
    assert built2.points == built.points and built2.collection == built.collection
    assert len(bpy.data.objects[built.points].data.vertices) == 400
    assert len(bpy.data.meshes) == 1 and len(bpy.data.collections) == 1 and len(bpy.data.objects) == 2
    _assert_scene_equal(big, blend_storage.scene_from_object(bpy.data.objects[built.points]))
    scene_builder.remove_built(built2)
    assert len(bpy.data.objects) == 0 and len(bpy.data.meshes) == 0
    assert len(bpy.data.cameras) == 0 and len(bpy.data.collections) == 0


def test_scene_without_cameras_or_segments():
    from ov3r.core.scene import SemanticScene

    scene = SemanticScene.from_points(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.uint8))
    built = scene_builder.build_scene(scene, scene_path="/tmp/empty room.ov3r.npz")
    assert built.camera == "" and built.collection == "Ov3R empty room"
    back = blend_storage.scene_from_object(bpy.data.objects[built.points])
    assert len(back) == 3 and len(back.cameras) == 0 and len(back.segments) == 0


def test_portrait_camera_projects_like_opencv():
    scene = make_scene(n=50, m=3)
    scene.cameras.image_size = (480, 640)
    scene.cameras.intrinsics[:] = np.array([[510.0, 0, 250.0], [0, 500.0, 310.0], [0, 0, 1]], np.float32)
    built = scene_builder.build_scene(scene, video_path="/nonexistent/portrait.mp4")
    assert bpy.data.objects[built.camera].data.sensor_fit == "VERTICAL"
    _check_camera(scene, built)
