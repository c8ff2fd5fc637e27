"""The repository is a valid Blender extension: Blender's own tool validates and builds
it, the zip installs into a throwaway user folder, enables, disables and enables again."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, USER_RESOURCES, blender_ext_run, bpy
from ov3r.ov3r_addon import compat

MODULE = "bl_ext.user_default.ov3r"


def test_manifest_validates():
    res = blender_ext_run("validate", str(REPO))
    assert res.returncode == 0, res.stdout + res.stderr


def test_zip_contents(extension_zip):
    res = blender_ext_run("validate", str(extension_zip))
    assert res.returncode == 0, res.stdout + res.stderr
    names = zipfile.ZipFile(extension_zip).namelist()
    for required in ("blender_manifest.toml", "__init__.py", "core/worker.py", "core/scene/io.py",
                     "ov3r_addon/job_runner.py", "operators/import_video.py", "panels/sidebar.py"):
        assert required in names
    for name in names:
        top = name.split("/")[0]
        assert top not in {"tests", ".venv", ".git", "docs", "out", ".ci", "__pycache__"}, name
        assert "__pycache__" not in name and not name.endswith((".pyc", ".blend1")), name
    # one model per role: exactly the weight files core/models/shipped.py names, and a small download
    weights = sorted(n for n in names if n.endswith(".safetensors"))
    assert weights == ["core/models/compact/weights/compact_v4.safetensors",
                       "core/models/compact/weights/compact_v8.safetensors",
                       "core/models/ovs/weights/ovs_v6.safetensors",
                       "core/models/pretrained/weights/mb3_centernet_coco.safetensors"]
    # experiment reports live in docs/; the one JSON the engine reads is the object cue's prior (shipped.CLASS_HEIGHTS)
    assert [n for n in names if n.endswith(".json") and "/models/" in n] == ["core/models/priors/class_heights.json"]
    assert extension_zip.stat().st_size < 25 * 2**20


def test_install_enable_disable(extension_zip):
    ext_dir = Path(bpy.utils.user_resource("EXTENSIONS"))
    assert str(ext_dir).startswith(USER_RESOURCES), "must not touch the real user folders"
    res = bpy.ops.extensions.package_install_files(
        filepath=str(extension_zip), repo="user_default", enable_on_install=True
    )
    assert res == {"FINISHED"}
    installed = ext_dir / "user_default" / "ov3r"
    assert (installed / "blender_manifest.toml").is_file() and not (installed / "tests").exists()
    try:
        assert MODULE in bpy.context.preferences.addons
        assert hasattr(bpy.ops.ov3r, "import_video") and hasattr(bpy.ops.ov3r, "cancel_job")
        assert hasattr(bpy.ops.ov3r, "import_scene")
        assert hasattr(bpy.types, "VIEW3D_PT_ov3r_import")
        prefs = bpy.context.preferences.addons[MODULE].preferences
        assert prefs.worker_python == "" and prefs.point_size > 0

        assert bpy.ops.preferences.addon_disable(module=MODULE) == {"FINISHED"}
        assert MODULE not in bpy.context.preferences.addons
        assert not hasattr(bpy.types.WindowManager, "ov3r_job")
        assert not hasattr(bpy.types, "VIEW3D_PT_ov3r_import")

        assert bpy.ops.preferences.addon_enable(module=MODULE) == {"FINISHED"}
        assert hasattr(bpy.types.WindowManager, "ov3r_job") and hasattr(bpy.types.Scene, "ov3r_settings")
        assert bpy.ops.ov3r.import_video.poll()
    finally:
        if MODULE in bpy.context.preferences.addons:
            bpy.ops.preferences.addon_disable(module=MODULE)

    # The worker runs from the installed folder: ``core`` imports there on its own.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)}
    env["PYTHONPATH"] = str(installed)
    res = subprocess.run([sys.executable, "-c", "import core.worker, core.scene"], cwd=str(installed), env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


@pytest.fixture(scope="module")
def orbit_video(tmp_path_factory) -> tuple[Path, object]:
    """The rendered orbit fixture (Cycles; cached by config hash), copied to a path with
    spaces and non-ASCII characters."""
    import shutil

    from ov3r.core.scenegen.orbit import OrbitConfig, cached_orbit

    fixture = cached_orbit(OrbitConfig())
    d = tmp_path_factory.mktemp("vidéos salle")
    video = d / "séjour scan 1.mp4"
    shutil.copy(fixture.video_path, video)
    return video, fixture


def _ov3r_objects() -> list:
    return [o for o in bpy.data.objects if "ov3r" in o.keys() and o.type == "MESH"]


def _check_imported_scene(n_min: int, n_keyframes_min: int) -> tuple[int, str]:
    objs = _ov3r_objects()
    assert len(objs) == 1, [o.name for o in bpy.data.objects]
    obj = objs[0]
    mesh = obj.data
    n = len(mesh.vertices)
    assert n >= n_min
    for name in ("color", "segment_id", "confidence", "frame_id"):
        assert name in mesh.attributes, name
        assert len(mesh.attributes[name].data) == n
    assert any(m.type == "NODES" for m in obj.modifiers)
    cam = bpy.context.scene.camera
    assert cam is not None and cam.type == "CAMERA"
    assert cam.animation_data is not None and cam.animation_data.action is not None
    fcurves = compat.action_fcurves(cam.animation_data)
    assert len({kp.co[0] for fc in fcurves for kp in fc.keyframe_points}) >= n_keyframes_min
    assert cam.data.background_images and cam.data.background_images[0].clip is not None
    return n, obj.name


def test_import_video_end_to_end(extension_zip, orbit_video, tmp_path):
    """Install the built zip, enable it, import a real rendered video through the real worker,
    save + reopen the .blend, disable + enable again."""
    video, fixture = orbit_video
    res = bpy.ops.extensions.package_install_files(filepath=str(extension_zip), repo="user_default",
                                                   enable_on_install=True)
    assert res == {"FINISHED"}
    try:
        assert bpy.ops.ov3r.import_video(filepath=str(video), wait=True) == {"FINISHED"}
        n, name = _check_imported_scene(n_min=5000, n_keyframes_min=5)
        before = np.array([0.0] * (3 * n), np.float32)
        bpy.data.objects[name].data.attributes["position"].data.foreach_get("vector", before)

        blend = tmp_path / "dossier à espaces" / "scène test.blend"
        blend.parent.mkdir()
        assert bpy.ops.wm.save_as_mainfile(filepath=str(blend)) == {"FINISHED"}
        bpy.ops.wm.read_factory_settings(use_empty=True)
        assert not _ov3r_objects()
        assert bpy.ops.wm.open_mainfile(filepath=str(blend)) == {"FINISHED"}
        n2, name2 = _check_imported_scene(n_min=n, n_keyframes_min=5)
        after = np.zeros_like(before)
        bpy.data.objects[name2].data.attributes["position"].data.foreach_get("vector", after)
        assert n2 == n and np.array_equal(before, after)

        assert bpy.ops.preferences.addon_disable(module=MODULE) == {"FINISHED"}
        assert bpy.ops.preferences.addon_enable(module=MODULE) == {"FINISHED"}
        assert bpy.ops.ov3r.import_video.poll()
        _check_imported_scene(n_min=n, n_keyframes_min=5)  # disabling never touches the data
    finally:
        if MODULE in bpy.context.preferences.addons:
            bpy.ops.preferences.addon_disable(module=MODULE)
