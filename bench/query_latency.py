"""Core query latency (no Blender): text -> per-segment and per-point scores with a warm text
encoder, on an N-point scene (default 1M points, 500 segments, 384-d descriptors).

    nice .venv/bin/python bench/query_latency.py [--points 1000000] [--segments 500] [--repeat 7]

Times :func:`core.semantics.query.query` end to end (prompt, all-MiniLM-L6-v2 text embedding,
cosine per segment, scores broadcast to every point) with a new text every repeat (no cache),
plus its parts; medians in milliseconds. The target: under 300 ms for 1M points.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.scene import Cameras, Segments, SemanticScene  # noqa: E402
from core.semantics.query import point_scores, query, segment_scores  # noqa: E402
from core.semantics.text_encoder import default_encoder, prompt  # noqa: E402

WORDS = ["sofa", "chair", "table", "lamp", "plant", "bookcase", "tv", "bed", "rug", "cabinet", "desk", "window",
         "door", "armchair", "pillow", "fridge", "sink", "stove", "mirror", "clock"]


def random_scene(n: int, s: int, dim: int = 384, seed: int = 0) -> SemanticScene:
    rng = np.random.default_rng(seed)
    desc = rng.standard_normal((s, dim)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    K = np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1]], np.float32)
    cams = Cameras(K[None], np.eye(4, dtype=np.float32)[None], np.zeros(1), np.zeros(1, np.int32), (640, 480))
    segs = Segments(descriptor=desc, point_count=np.full(s, n // s, np.int32),
                    centroid=np.zeros((s, 3), np.float32), box_center=np.zeros((s, 3), np.float32),
                    box_axes=np.repeat(np.eye(3, dtype=np.float32)[None], s, 0),
                    box_extent=np.ones((s, 3), np.float32), label=[""] * s, score=np.zeros(s, np.float32))
    return SemanticScene(points=rng.standard_normal((n, 3)).astype(np.float32),
                         colors=rng.integers(0, 256, (n, 3)).astype(np.uint8),
                         confidence=np.ones(n, np.float32), segment_id=rng.integers(-1, s, n).astype(np.int32),
                         frame_id=np.zeros(n, np.int32), cameras=cams, segments=segs,
                         metadata={"text_space": "all-MiniLM-L6-v2"}).validate()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--segments", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    scene = random_scene(a.points, a.segments)
    enc = default_encoder()
    enc.encode([prompt("warm up")])
    total, text_ms, seg_ms, pt_ms = [], [], [], []
    for i in range(a.repeat):
        word = f"{WORDS[i % len(WORDS)]} {i}"  # a new text every time: no embedding cache
        t0 = time.perf_counter()
        r = query(scene, word, enc)
        total.append(1000 * (time.perf_counter() - t0))
        assert r.point.shape == (a.points,)
        t0 = time.perf_counter()
        emb = enc.encode([prompt(word + " again")])[0]
        t1 = time.perf_counter()
        seg = segment_scores(scene, emb)
        t2 = time.perf_counter()
        point_scores(scene, seg)
        t3 = time.perf_counter()
        text_ms.append(1000 * (t1 - t0))
        seg_ms.append(1000 * (t2 - t1))
        pt_ms.append(1000 * (t3 - t2))
    med = statistics.median
    print(f"| points | segments | text -> per-point scores (ms) | text embedding | segment cosines | per-point broadcast |")
    print("|---|---|---|---|---|---|")
    print(f"| {a.points:,} | {a.segments} | **{med(total):.1f}** | {med(text_ms):.1f} | {med(seg_ms):.2f} | "
          f"{med(pt_ms):.1f} |")
    print(f"(medians of {a.repeat}; all runs: {', '.join(f'{t:.1f}' for t in total)} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
