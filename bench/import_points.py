"""Blender-side benchmark: import time of an N-point SemanticScene into Blender and .blend size.

    .venv/bin/python bench/import_points.py [--points 1000000] [--repeat 3]

Runs in the bpy module. Prints the median of ``repeat`` runs of load_scene + build_scene,
and the saved .blend size per million points.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _import_ov3r():
    spec = importlib.util.spec_from_file_location("ov3r", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ov3r"] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--points", type=int, default=1_000_000)
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    import bpy

    _import_ov3r()
    from ov3r.core.scene import Cameras, SemanticScene, load_scene, save_scene
    from ov3r.ov3r_addon import scene_builder

    rng = np.random.default_rng(0)
    n, m = a.points, a.cameras
    K = np.tile(np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1]], np.float32), (m, 1, 1))
    poses = np.tile(np.eye(4, dtype=np.float32), (m, 1, 1))
    poses[:, :3, 3] = rng.normal(size=(m, 3))
    cams = Cameras(K, poses, np.arange(m) / 30.0, np.arange(m, dtype=np.int32) * 10, (640, 480))
    scene = SemanticScene.from_points(rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3)), rng.random(n),
                                      rng.integers(0, m, n), cams, {"engine": "bench"})
    tmp = Path(tempfile.mkdtemp(prefix="ov3r-bench-"))
    path = save_scene(scene, tmp / "bench.ov3r.npz")
    times_total, times_build = [], []
    for _ in range(a.repeat):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        t0 = time.perf_counter()
        s = load_scene(path)
        t1 = time.perf_counter()
        scene_builder.build_scene(s, scene_path=str(path), point_size=0.01)
        t2 = time.perf_counter()
        times_total.append(t2 - t0)
        times_build.append(t2 - t1)
    blend = tmp / "bench.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    size_mib = os.path.getsize(blend) / 2**20
    print(f"points={n} cameras={m} repeat={a.repeat}")
    print(f"load_scene + build_scene: median {statistics.median(times_total) * 1000:.0f} ms "
          f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times_total)})")
    print(f"build_scene only: median {statistics.median(times_build) * 1000:.0f} ms")
    print(f".blend size: {size_mib:.1f} MiB ({size_mib / (n / 1e6):.1f} MiB per million points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
