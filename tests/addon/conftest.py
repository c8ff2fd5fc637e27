"""Fixtures for tests that run in the real ``bpy`` module (Blender as a Python module).

* bpy can be imported once per process; every test starts from an empty factory file.
* Blender's user folders point at a temp dir (BLENDER_USER_RESOURCES, set before bpy is
  imported), so nothing here touches the real user's scripts or extensions.
* The repository root is imported as the package ``ov3r`` (like ``bl_ext.<repo>.ov3r`` in
  Blender) so the add-on's relative imports work.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
USER_RESOURCES = tempfile.mkdtemp(prefix="ov3r-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = USER_RESOURCES

import bpy  # noqa: E402 - a test dependency (bpy==5.0.1); must come after BLENDER_USER_RESOURCES


def _import_repo_as_package(name: str = "ov3r"):
    """``import ov3r`` (the editable install maps it to the repo root), else an alias."""
    try:
        module = importlib.import_module(name)
        if Path(module.__file__).resolve() == REPO / "__init__.py":
            return module
    except ImportError:
        pass
    sys.modules.pop(name, None)
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ov3r = _import_repo_as_package()


MATRIX_MARK = "blender_matrix"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A per-version run (``-m blender_matrix``, make test-blender) imports only the modules that
    carry the mark: the others import the engine's packages (torch, cv2...) in the test process,
    which the per-version Blender venvs do not have."""
    if config.getoption("markexpr", "") != MATRIX_MARK or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return f"pytest.mark.{MATRIX_MARK}" not in collection_path.read_text(encoding="utf-8")


# bpy 4.2's module build frees Python-defined space-type classes in a C++ static destructor, after the
# interpreter is gone (SpaceType::~SpaceType -> bpy_class_free -> PyGILState_Ensure on no interpreter):
# a segfault at process exit once the glTF exporter has run, even in a bare script. Blender itself tears
# down in order, so this is the test process only. There the process ends right after pytest's report,
# keeping its exit status, before those destructors run.
_EXIT_BEFORE_STATIC_DESTRUCTORS = bpy.app.version < (4, 3, 0)
_session_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _session_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _EXIT_BEFORE_STATIC_DESTRUCTORS and _session_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session_status[-1])


@pytest.fixture(autouse=True)
def empty_file():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield
    bpy.ops.wm.read_factory_settings(use_empty=True)


def blender_ext_run(*args: str) -> subprocess.CompletedProcess:
    """Blender's own extension tool (build / validate / install-files), without a Blender binary."""
    tool = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core/bl_pkg/cli/blender_ext.py"
    if not tool.is_file():
        pytest.skip(f"Blender's extension tool not found at {tool}")
    return subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    """The extension zip built from the source tree by Blender's tool, as `make extension` does."""
    out = tmp_path_factory.mktemp("ext build")
    res = blender_ext_run("build", "--source-dir", str(REPO), "--output-dir", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    zips = list(out.glob("ov3r-*.zip"))
    assert len(zips) == 1, res.stdout
    return zips[0]


def evaluated_points(obj, reads: dict[str, tuple[str, int]]) -> tuple[int, dict[str, np.ndarray], list[str]]:
    """What the points modifier makes of ``obj``: (point count, {attribute: values (count, width)},
    material names). ``reads`` maps an attribute to its foreach property and width, e.g.
    ``{"radius": ("value", 1)}``. Object.evaluated_geometry() exists from 4.3; before it the
    evaluated point cloud is a depsgraph instance of the object, valid only while iterating."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)

    def read(cloud):
        out = {}
        for name, (prop, width) in reads.items():
            values = np.empty(len(cloud.points) * width, np.float32)
            cloud.attributes[name].data.foreach_get(prop, values)
            out[name] = values.reshape(len(cloud.points), width)
        return len(cloud.points), out, [m.name for m in cloud.materials if m is not None]

    if hasattr(evaluated, "evaluated_geometry"):
        geometry = evaluated.evaluated_geometry()  # owns the point cloud: keep it alive while reading
        assert geometry.pointcloud is not None, "the points modifier made no point cloud"
        return read(geometry.pointcloud)
    for inst in depsgraph.object_instances:
        if inst.object.type == "POINTCLOUD" and inst.object.original == obj:
            return read(inst.object.data)
    raise AssertionError("the points modifier made no point cloud")


@pytest.fixture(scope="module")
def registered_addon():
    """The add-on registered from the source tree (as ``ov3r``) for this test module."""
    ov3r.register()
    yield ov3r
    ov3r.unregister()


def make_scene(n: int = 500, m: int = 3, s: int = 4, dim: int = 8, seed: int = 0, metadata: dict | None = None):
    """A synthetic SemanticScene: random points, ``m`` cameras on a line looking at +Y-ish."""
    from ov3r.core.scene import Cameras, Segments, SemanticScene

    rng = np.random.default_rng(seed)
    w, h = 640, 480
    K = np.array([[500.0, 0, 330.0], [0, 505.0, 230.0], [0, 0, 1]], np.float32)
    poses = []
    for i in range(m):
        angle = 0.3 * i
        c, sn = np.cos(angle), np.sin(angle)
        R = np.array([[c, 0, sn], [0, 1, 0], [-sn, 0, c]]) @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = [0.5 * i, -2.0 + 0.1 * i, 1.2]
        poses.append(T)
    cams = Cameras(
        intrinsics=np.repeat(K[None], m, 0),
        world_from_camera=np.asarray(poses, np.float32),
        timestamps=np.array([0.0, 0.5, 1.01, 1.5, 2.0][:m] if m <= 5 else np.arange(m) * 0.4, np.float64),
        frame_index=np.arange(m, dtype=np.int32) * 15,
        image_size=(w, h),
    )
    segs = Segments(
        descriptor=rng.standard_normal((s, dim)).astype(np.float32),
        point_count=rng.integers(1, 100, s).astype(np.int32),
        centroid=rng.standard_normal((s, 3)).astype(np.float32),
        box_center=rng.standard_normal((s, 3)).astype(np.float32),
        box_axes=np.repeat(np.eye(3, dtype=np.float32)[None], s, 0),
        box_extent=rng.random((s, 3)).astype(np.float32),
        label=[f"chair {i} ü" for i in range(s)],
        score=rng.random(s).astype(np.float32),
    )
    meta = {"engine": "sfm", "video": {"name": "room.mp4", "fps": 30.0, "width": 1280, "height": 960}}
    meta.update(metadata or {})
    return SemanticScene(
        points=(rng.standard_normal((n, 3)) * 2).astype(np.float32),
        colors=rng.integers(0, 256, (n, 3)).astype(np.uint8),
        confidence=rng.random(n).astype(np.float32),
        segment_id=rng.integers(-1, s, n).astype(np.int32),
        frame_id=rng.integers(0, m, n).astype(np.int32),
        cameras=cams,
        segments=segs,
        metadata=meta,
    ).validate()
