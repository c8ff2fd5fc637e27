"""A labelled SemanticScene from a rendered benchmark room's ground truth (no reconstruction):
GT cloud + GT cameras, one segment per GT instance (label = its class, box = its points'
axis-aligned box, descriptor = the text embedding of its class prompt). For the docs
pictures, the Blender-side benchmarks and the alignment tests.

    from gt_scene import gt_semantic_scene   # with bench/ on sys.path
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _core():
    import importlib

    try:
        return importlib.import_module("ov3r.core")
    except ImportError:
        return importlib.import_module("core")


def gt_semantic_scene(scene_dir: str | Path, encoder: Any = None, min_points: int = 20):
    core = _core()
    import importlib

    suite = importlib.import_module(f"{core.__name__}.scenegen.suite")
    scene_mod = importlib.import_module(f"{core.__name__}.scene")
    te = importlib.import_module(f"{core.__name__}.semantics.text_encoder")
    data = suite.load_scene(Path(scene_dir))
    gt, cams = data["gt_cloud"], data["cameras"]
    classes = data["classes"]["classes"]
    inst = gt["instance"].astype(np.int64)
    ids = [i for i in np.unique(inst) if i > 0 and (inst == i).sum() >= min_points]
    seg_of = np.full(inst.max() + 1 if len(inst) else 1, -1, np.int32)
    seg_of[ids] = np.arange(len(ids))
    segment_id = seg_of[inst]
    pts = gt["points"].astype(np.float32)
    labels, lo, hi = [], [], []
    for i in ids:
        m = inst == i
        labels.append(classes[int(np.bincount(gt["semantic"][m]).argmax())])
        lo.append(pts[m].min(0))
        hi.append(pts[m].max(0))
    lo, hi = np.asarray(lo, np.float32).reshape(-1, 3), np.asarray(hi, np.float32).reshape(-1, 3)
    s = len(ids)
    if encoder is None:
        encoder = te.TextEncoder()
    desc = np.asarray(encoder.encode([te.prompt(w) for w in labels]), np.float32) if s else np.zeros((0, 384))
    m = len(cams["world_from_camera"])
    K = cams["intrinsics"].astype(np.float32)
    info = data["info"]["config"]
    cameras = scene_mod.Cameras(np.repeat(K[None], m, 0), cams["world_from_camera"].astype(np.float32),
                                cams["timestamps"].astype(np.float64), np.arange(m, dtype=np.int32),
                                (int(info["width"]), int(info["height"])))
    segments = scene_mod.Segments(
        descriptor=desc, point_count=np.bincount(segment_id[segment_id >= 0], minlength=s).astype(np.int32),
        centroid=np.asarray([pts[segment_id == k].mean(0) for k in range(s)], np.float32).reshape(-1, 3),
        box_center=(lo + hi) / 2, box_axes=np.repeat(np.eye(3, dtype=np.float32)[None], s, 0), box_extent=hi - lo,
        label=[""] * s, score=np.zeros(s, np.float32),
    )
    n = len(pts)
    return scene_mod.SemanticScene(
        points=pts, colors=gt["colors"].astype(np.uint8), confidence=np.ones(n, np.float32), segment_id=segment_id,
        frame_id=np.zeros(n, np.int32), cameras=cameras, segments=segments,
        metadata={"engine": "ground-truth", "text_space": getattr(encoder, "space_id", ""),
                  "video": {"fps": float(info["fps"]), "path": str(data["video"])},
                  "bench": {"name": info["name"], "gt_labels": labels}},
    ).validate()
