"""Blender-side benchmark of the query workflow on an N-point scan (default 1M points,
500 segments with 384-d descriptors), in the bpy module. Medians of ``--repeat`` runs.

    nice .venv/bin/python bench/query_perf.py [--points 1000000] [--segments 500] [--repeat 5]

Prints: import (load_scene + build_scene) time; selection update (the whole Select path
with a known embedding: segment scores, ``query_score`` written, ``.select_vert`` written),
the threshold slider update, the raw selection write vs ``vertices.foreach_set('select')``;
a query round trip to the warm worker (real offline text encoder, new text every time)
and the whole Select operator with it; .blend size and process memory per million points.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
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


def _median_ms(fn, repeat: int) -> tuple[float, list[float]]:
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), times


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--points", type=int, default=1_000_000)
    p.add_argument("--segments", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-worker", action="store_true", help="skip the real text-encoder worker")
    a = p.parse_args()
    import bpy

    ov3r = _import_ov3r()
    from ov3r.core.scene import Cameras, Segments, SemanticScene, load_scene, save_scene
    from ov3r.ov3r_addon import point_attrs, query_client, query_runner, scan_query, scene_builder

    rng = np.random.default_rng(0)
    n, s, m = a.points, a.segments, 50
    K = np.tile(np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1]], np.float32), (m, 1, 1))
    poses = np.tile(np.eye(4, dtype=np.float32), (m, 1, 1))
    cams = Cameras(K, poses, np.arange(m) / 30.0, np.arange(m, dtype=np.int32), (640, 480))
    desc = rng.standard_normal((s, 384)).astype(np.float32)
    seg = Segments(desc, np.zeros(s, np.int32), np.zeros((s, 3), np.float32), np.zeros((s, 3), np.float32),
                   np.repeat(np.eye(3, dtype=np.float32)[None], s, 0), np.ones((s, 3), np.float32), [""] * s,
                   np.zeros(s, np.float32))
    scene = SemanticScene(rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8),
                          rng.random(n).astype(np.float32), rng.integers(-1, s, n).astype(np.int32),
                          np.zeros(n, np.int32), cams, seg, {"engine": "bench"})
    tmp = Path(tempfile.mkdtemp(prefix="ov3r-bench-"))
    path = save_scene(scene, tmp / "bench.ov3r.npz")
    ov3r.register()
    rss0 = None

    def do_import(_i):
        nonlocal rss0
        bpy.ops.wm.read_factory_settings(use_empty=True)
        rss0 = _rss_mib()
        scene_builder.build_scene(load_scene(path), scene_path=str(path))

    imp_ms, imp_runs = _median_ms(do_import, min(a.repeat, 3))
    obj = bpy.data.objects["bench points"]
    bpy.context.view_layer.objects.active = obj
    rss_scan = _rss_mib() - rss0
    print(f"points={n:,} segments={s} repeat={a.repeat}")
    print(f"import (load_scene + build_scene): median {imp_ms:.0f} ms  runs {[round(t) for t in imp_runs]}")

    emb = rng.standard_normal((1, 384)).astype(np.float32)
    scan_query.apply_query(obj, "warm-up", emb, 0.1)
    sel_ms, sel_runs = _median_ms(lambda i: scan_query.apply_query(obj, f"q{i}", emb + i, 0.1), a.repeat)
    print(f"selection update (Select with a known embedding: scores + query_score + .select_vert): "
          f"median {sel_ms:.1f} ms  runs {[round(t, 1) for t in sel_runs]}")
    thr_ms, _thr_runs = _median_ms(lambda i: scan_query.set_threshold(obj, 0.05 + 0.01 * i), a.repeat)
    print(f"threshold slider update (GN input + selection): median {thr_ms:.1f} ms")

    def thr_and_eval(i):
        scan_query.set_threshold(obj, 0.05 + 0.01 * i)
        bpy.context.view_layer.update()  # what the next redraw does: re-evaluate the GN display

    eval_ms, _ = _median_ms(thr_and_eval, a.repeat)
    print(f"threshold slider update + Blender's re-evaluation of the {n:,}-point display: median {eval_ms:.0f} ms")
    mask = rng.random(n) > 0.5
    raw_ms, _ = _median_ms(lambda i: point_attrs.set_selection(obj.data, mask), a.repeat)
    old_ms, _ = _median_ms(lambda i: obj.data.vertices.foreach_set("select", mask), min(a.repeat, 3))
    print(f"raw selection write: .select_vert attribute {raw_ms:.2f} ms vs vertices.foreach_set('select') "
          f"{old_ms:.0f} ms")

    if not a.no_worker:
        query_client.set_encoder_override(None)
        worker = query_runner.get_worker()
        t0 = time.perf_counter()
        worker.request(["warm up"], prompt=True)
        print(f"query worker cold start (process + model load + first query): {time.perf_counter() - t0:.1f} s")
        words = ["sofa", "a wooden chair", "the lamp", "kitchen sink", "bookshelf", "tv", "plant", "rug"]
        rt_ms, rt_runs = _median_ms(lambda i: worker.request([f"{words[i % len(words)]} {i}"], prompt=True),
                                    a.repeat)
        print(f"query round trip, warm worker (new text each time): median {rt_ms:.0f} ms  "
              f"runs {[round(t) for t in rt_runs]}")
        op_ms, _op_runs = _median_ms(lambda i: bpy.ops.ov3r.query_select(text=f"chair {i}", threshold=0.1, wait=True),
                                    a.repeat)
        print(f"Select operator end to end (warm worker, 1 new text, {n:,} points): median {op_ms:.0f} ms")
        query_client.shutdown()

    blend = tmp / "bench.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    size_mib = os.path.getsize(blend) / 2**20
    print(f".blend size with query_score + selection: {size_mib:.1f} MiB ({size_mib / (n / 1e6):.1f} MiB per "
          f"million points)")
    print(f"process memory of the scan after import: {rss_scan:.0f} MiB ({rss_scan / (n / 1e6):.0f} MiB per million "
          f"points)")
    ov3r.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
