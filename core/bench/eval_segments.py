"""Measure a 2D segmenter against the GT instances of rendered benchmark scenes.

``python -m core.bench.eval_segments SCENE_DIR [...] [--frames 8] [--depth none|gt|cloud]``
prints the mean best IoU per GT instance (instances covering >= 0.5 % of the image) of the
classical segmenter, or of SAM's automatic masks with ``--sam-checkpoint PATH [--sam-model-type vit_t]``.
``--depth cloud`` renders the depth from the GT cloud with the z-buffer of
``projection.render_depth`` (what the pipeline does with a reconstruction).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..semantics.masks import best_iou
from ..semantics.projection import point_spacing, render_depth, scale_intrinsics


def video_frames(path: Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decoded RGB frames (H,W,3) uint8 of the given indices."""
    from ..video import iter_frames

    want, out = {int(i) for i in indices}, {}
    for i, fr in enumerate(iter_frames(path, None, max(want) + 1)):
        img = getattr(fr, "image", fr)
        if i in want:
            out[i] = np.asarray(img)
    return out


def evaluate(scene_dir: Path, segmenter, frames: int = 8, depth_mode: str = "cloud",
             min_frac: float = 0.005) -> dict:
    from ..scenegen.suite import load_scene

    sc = load_scene(scene_dir)
    inst = np.load(scene_dir / "labels.npz")["instance"]
    F, H, W = inst.shape
    idx = np.unique(np.linspace(0, F - 1, min(frames, F)).round().astype(int))
    imgs = video_frames(sc["video"], idx)
    K = sc["cameras"]["intrinsics"]
    Wc = sc["cameras"]["world_from_camera"]
    gt_depth = np.load(scene_dir / "depth.npz")["depth_mm"] if depth_mode == "gt" else None
    ious, secs = [], 0.0
    spacing = point_spacing(sc["gt_cloud"]["points"]) if depth_mode == "cloud" else None
    for f in idx:
        img = imgs[int(f)]
        if img.shape[:2] != (H, W):
            import cv2

            img = cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)
        if depth_mode == "gt":
            d = gt_depth[f].astype(np.float32) / 1000
            d[d <= 0] = np.nan
        elif depth_mode == "cloud":
            w2 = 320
            size = (w2, round(H * w2 / W))
            K2 = scale_intrinsics(K, (W, H), size)
            d = render_depth(sc["gt_cloud"]["points"], K2, Wc[f], size, radius=None, spacing=spacing)
            import cv2

            d = cv2.resize(d, (W, H), interpolation=cv2.INTER_NEAREST)
        else:
            d = None
        t0 = time.perf_counter()
        masks = segmenter.segment(img, d, K)
        secs += time.perf_counter() - t0
        ious += list(best_iou(masks, inst[f].astype(np.int64), (0,), int(min_frac * H * W)).values())
    return {"scene": sc["info"]["config"]["name"], "frames": len(idx), "instances": len(ious),
            "mean_best_iou": float(np.mean(ious)) if ious else float("nan"),
            "seconds_per_frame": secs / max(len(idx), 1)}


def main(argv: Sequence[str] | None = None) -> int:
    from ..semantics.segment_classical import ClassicalSegmenter

    p = argparse.ArgumentParser(prog="python -m core.bench.eval_segments")
    p.add_argument("scenes", nargs="+", type=Path)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--depth", choices=["none", "gt", "cloud"], default="cloud")
    p.add_argument("--sam-checkpoint", default=None, help="measure SAM's automatic masks with these local weights")
    p.add_argument("--sam-model-type", default="vit_b", help="vit_b | vit_l | vit_h | vit_t (MobileSAM)")
    p.add_argument("--points-per-side", type=int, default=None, help="SAM's point grid (default: SamSettings')")
    a = p.parse_args(argv)
    if a.sam_checkpoint:
        from ..semantics.stage import SemanticsSettings, make_segmenter

        seg = make_segmenter(SemanticsSettings(segmenter="sam", sam_checkpoint=a.sam_checkpoint,
                                               sam_model_type=a.sam_model_type, sam_points_per_side=a.points_per_side))
    else:
        seg = ClassicalSegmenter()
    rows = [evaluate(s, seg, a.frames, a.depth) for s in a.scenes]
    for r in rows:
        print(r)
    print("mean best IoU over scenes:", float(np.mean([r["mean_best_iou"] for r in rows])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
