"""The semantics stage on a rendered benchmark scene with GT geometry (GT cloud + GT cameras).

``python -m core.bench.eval_scene SCENE_DIR [--frames 20] [--points 200000] [--encoder compact|oracle|none]``
``python -m core.bench.eval_scene SCENE_DIR --scene-file RECONSTRUCTION.ov3r.npz [--encoder ...]``

Isolates the semantics from the geometry engine: the video's frames, the GT cameras and a
subsample of the GT cloud go through :func:`core.semantics.stage.run_semantics`. Prints
- 3D segments: mean best IoU per GT instance (on the points; instances >= 100 points);
- with an encoder: labels over the taxonomy vocabulary (closed set: no "other" unless
  ``--threshold``) -> mIoU / mAcc on the same points,
  and per present class a text query's precision / recall (points of the segments whose
  score is within ``margin`` of the best, ``query.select_points``), the same at the scene's
  recorded query threshold (``at_threshold``: what the add-on selects, every segment scoring at
  or above it) and whether a synonym ranks the same segment first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SYNONYMS = {"sofa": "couch", "table": "desk", "tv": "television", "plant": "houseplant", "lamp": "light",
            "bookcase": "bookshelf", "rug": "carpet", "cabinet": "cupboard", "bed": "mattress"}


def oracle_describer(scene_dir: Path, frame_index: np.ndarray, num_classes: int, noise: float = 0.05, seed: int = 0):
    """``describe(f, image, masks)`` for run_semantics: one-hot of each mask's majority GT class
    + Gaussian noise (a near-perfect encoder: measures segmentation + lifting alone)."""
    sem = np.load(scene_dir / "labels.npz")["semantic"]
    rng = np.random.default_rng(seed)

    def describe(f: int, image: np.ndarray, masks) -> np.ndarray:
        gt = sem[int(frame_index[f])]
        d = np.zeros((len(masks), num_classes), np.float32)
        for k, m in enumerate(masks):
            d[k, np.bincount(gt[m], minlength=num_classes).argmax()] = 1
        return d + rng.normal(0, noise, d.shape).astype(np.float32)

    return describe


def gt_scene(scene_dir: Path, frames: int = 20, points: int = 200_000, seed: int = 0):
    """-> (SemanticScene of GT points + GT cameras, images, gt instance (P,), gt semantic (P,))."""
    from ..scenegen.suite import load_scene
    from ..scene import Cameras, SemanticScene
    from .eval_segments import video_frames

    sc = load_scene(scene_dir)
    gt = sc["gt_cloud"]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(gt["points"]), min(points, len(gt["points"])), replace=False))
    cams = sc["cameras"]
    F = len(cams["world_from_camera"])
    fi = np.unique(np.linspace(0, F - 1, min(frames, F)).round().astype(int))
    imgs = video_frames(sc["video"], fi)
    cfg = sc["info"]["config"]
    W, H = int(cfg["width"]), int(cfg["height"])
    K = np.asarray(cams["intrinsics"], np.float32)
    cameras = Cameras(np.repeat(K[None], len(fi), 0), cams["world_from_camera"][fi].astype(np.float32),
                      cams["timestamps"][fi].astype(np.float64), fi.astype(np.int32), (W, H))
    scene = SemanticScene.from_points(gt["points"][idx], gt["colors"][idx], cameras=cameras)
    images = [imgs[int(f)] for f in fi]
    return scene, images, gt["instance"][idx].astype(np.int64), gt["semantic"][idx].astype(np.int64)


def instance_best_iou(seg: np.ndarray, inst: np.ndarray, min_points: int = 100) -> float:
    """Mean over GT instances (>= min_points, id > 0) of the best IoU of a 3D segment (points)."""
    valid = seg >= 0
    ids, counts = np.unique(inst, return_counts=True)
    ids = ids[(counts >= min_points) & (ids > 0)]
    S = int(seg.max()) + 1 if valid.any() else 0
    if S == 0 or len(ids) == 0:
        return 0.0
    imap = np.full(int(inst.max()) + 1, -1)
    imap[ids] = np.arange(len(ids))
    gi = imap[inst]
    both = valid & (gi >= 0)
    inter = np.zeros((len(ids), S))
    np.add.at(inter, (gi[both], seg[both]), 1)
    gsize = np.bincount(gi[gi >= 0], minlength=len(ids))[:, None]
    ssize = np.bincount(seg[valid], minlength=S)[None, :]
    iou = inter / np.maximum(gsize + ssize - inter, 1)
    return float(iou.max(1).mean())


def evaluate(scene_dir: Path, frames: int, points: int, encoder_kind: str, threshold: float | None,
             margin: float = 0.05) -> dict:
    from .semantic_metrics import confusion_matrix, semantic_scores
    from ..scenegen.taxonomy import CLASSES
    from ..jobs import JobContext
    from ..semantics.stage import SemanticsSettings, run_semantics

    scene, images, inst, sem = gt_scene(scene_dir, frames, points)
    t0 = time.perf_counter()
    oracle = encoder_kind == "oracle"
    describe = oracle_describer(scene_dir, scene.cameras.frame_index, len(CLASSES)) if oracle else None
    st = SemanticsSettings.from_env("none" if oracle else encoder_kind)
    run_semantics(scene, images, JobContext(), st, describe=describe)
    secs = time.perf_counter() - t0
    seg = scene.segment_id
    out = {"scene": scene_dir.name[:12], "frames": len(images), "points": len(scene), "segments": len(scene.segments),
           "seconds": secs, "segmented_frac": float((seg >= 0).mean()),
           "instance_mean_best_iou": instance_best_iou(seg, inst)}
    if encoder_kind == "none":
        return out
    if oracle:
        lut = np.append(scene.segments.descriptor.argmax(1), 0)
        out["semantic"] = {k: v for k, v in semantic_scores(confusion_matrix(sem, lut[seg], len(CLASSES)),
                                                            CLASSES).items()
                           if k in ("miou", "macc", "fmiou", "num_present")}
        return out
    from ..semantics.query import default_threshold, label_scene, query, select_points
    from ..semantics.text_encoder import default_encoder

    enc = default_encoder()
    query_threshold = default_threshold(scene)  # the add-on's default: the descriptors' calibrated threshold
    vocab = [c for c in CLASSES[1:]]
    thr = -1.0 if threshold is None else threshold  # closed vocabulary (the benchmark protocol): no "other"
    label_scene(scene, vocab, thr, enc)
    lut = np.array([CLASSES.index(lbl) if lbl in CLASSES else 0 for lbl in scene.segments.label] + [0])
    pred = lut[seg]
    out["semantic"] = {k: v for k, v in semantic_scores(confusion_matrix(sem, pred, len(CLASSES)), CLASSES).items()
                       if k in ("miou", "macc", "fmiou", "num_present")}
    q = {}
    for c in np.unique(sem):
        name = CLASSES[int(c)]
        if c == 0 or (sem == c).sum() < 200:
            continue
        r = query(scene, name, enc)
        sel = select_points(scene, r, margin)
        truth = sem == c
        tp = float((sel & truth).sum())
        row = {"precision": tp / max(sel.sum(), 1), "recall": tp / max(truth.sum(), 1)}
        sel_t = select_points(scene, r, margin=np.inf, min_score=query_threshold)
        tp_t = float((sel_t & truth).sum())
        row["at_threshold"] = {"threshold": query_threshold, "precision": tp_t / max(sel_t.sum(), 1),
                               "recall": tp_t / max(truth.sum(), 1)}
        if name in SYNONYMS:
            syn = query(scene, SYNONYMS[name], enc)
            row["synonym_same_top"] = bool(syn.order[0] == r.order[0])
            # near-ties swap the first two: also whether the synonym's best segment is mostly the class
            # and whether both rank the same three segments first
            row["synonym_top_is_class"] = bool((sem[seg == syn.order[0]] == c).mean() >= 0.5)
            row["synonym_same_top3"] = bool(set(syn.order[:3].tolist()) == set(r.order[:3].tolist()))
        q[name] = row
    out["queries"] = q
    return out


def evaluate_reconstruction(scene_file: Path, scene_dir: Path, encoder_kind: str = "oracle",
                            threshold: float | None = None) -> dict:
    """The stage on a reconstructed scene (e.g. ``ov3r reconstruct --semantics none`` of the
    room's video), scored like ``ov3r bench``: Sim(3) on the camera centres + ICP, then each GT
    point takes the majority label of its 5 nearest predicted points -> mIoU."""
    from . import metrics as BM
    from .semantic_metrics import confusion_matrix, semantic_scores, transfer_labels
    from ..scenegen.suite import load_scene as load_bench
    from ..scenegen.taxonomy import CLASSES
    from ..jobs import JobContext
    from ..scene import load_scene
    from .eval_segments import video_frames
    from ..semantics.stage import SemanticsSettings, run_semantics

    scene = load_scene(scene_file)
    bench = load_bench(scene_dir)
    fi = scene.cameras.frame_index
    frames = video_frames(bench["video"], fi)
    images = [frames[int(i)] for i in fi]
    oracle = encoder_kind == "oracle"
    describe = oracle_describer(scene_dir, fi, len(CLASSES)) if oracle else None
    t0 = time.perf_counter()
    run_semantics(scene, images, JobContext(), SemanticsSettings.from_env("none" if oracle else encoder_kind),
                  describe=describe)
    secs = time.perf_counter() - t0
    if oracle:
        lut = np.append(scene.segments.descriptor.argmax(1), 0)
    else:
        from ..semantics.query import label_scene
        from ..semantics.text_encoder import default_encoder

        label_scene(scene, CLASSES[1:], -1.0 if threshold is None else threshold, default_encoder())
        lut = np.array([CLASSES.index(x) if x in CLASSES else 0 for x in scene.segments.label] + [0])
    gt_pts = bench["gt_cloud"]["points"].astype(np.float64)
    gt_W = bench["cameras"]["world_from_camera"]
    pts = scene.points.astype(np.float64)
    sim = BM.align_cloud(pts, gt_pts, np.asarray(scene.cameras.world_from_camera, np.float64), gt_W[fi])
    tl = transfer_labels(gt_pts, BM.apply_sim3(pts, *sim), lut[scene.segment_id], k=5)
    sem = semantic_scores(confusion_matrix(bench["gt_cloud"]["semantic"], tl, len(CLASSES)), CLASSES)
    return {"scene": scene_dir.name[:12], "points": len(scene), "keyframes": len(scene.cameras),
            "segments": len(scene.segments), "seconds": secs,
            "semantic": {k: sem[k] for k in ("miou", "macc", "fmiou", "num_present")}}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.eval_scene")
    p.add_argument("scenes", nargs="+", type=Path)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--points", type=int, default=200_000)
    p.add_argument("--encoder", default="none", choices=["none", "oracle", "compact", "openclip"],
                   help="oracle: GT class of each mask + noise as its descriptor")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--scene-file", type=Path, default=None,
                   help="a reconstruction of the (single) room's video instead of the GT geometry")
    a = p.parse_args(argv)
    if a.scene_file is not None:
        print(json.dumps(evaluate_reconstruction(a.scene_file, a.scenes[0], a.encoder, a.threshold), indent=1,
                         default=float))
        return 0
    for s in a.scenes:
        print(json.dumps(evaluate(s, a.frames, a.points, a.encoder, a.threshold), indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
