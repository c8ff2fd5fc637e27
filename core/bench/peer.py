"""The product's geometry beside the plainest peer, plain pycolmap, in one run on the same videos.

``python -m core.bench.peer --scenes suite hard_test [--step 2] [--intrinsics] [--json out.json]``

The peer is pycolmap with its defaults and nothing tuned: every ``step``-th frame, SIFT
(``extract_features``), ``match_sequential`` and ``incremental_mapping``, its largest model kept.
Both sides get a camera for every video frame the same way (:func:`core.geometry.frame_placement.place_frames`:
registered frames as they are, frames between two registered samples interpolated, the rest
unplaced), and both are scored over all video frames against the rendered ground truth:

- ``placed``: fraction of video frames placed;
- ``ate_cm``: ATE RMSE over every video frame (unplaced frames keep their held / bridged pose, so a
  gap costs what it costs), after one Sim(3) fitted on the placed frames;
- ``ate_placed_cm``: the same over placed frames only; ``s``: wall seconds.

Neither side is given the true intrinsics unless ``--intrinsics``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..geometry.frame_placement import place_frames
from ..geometry.sfm.colmap_sfm import world_from_camera
from ..scene.cameras import Cameras
from ..scene.frame_path import FramePath
from ..scenegen.suite import load_scene
from .metrics import apply_sim3, umeyama_sim3
from .run import resolve_scenes

__all__ = ["run_peer", "run_product", "score_path", "main"]


def score_path(path: FramePath, gt_world_from_camera: np.ndarray) -> Dict[str, float]:
    """Placed fraction and ATE (cm) of a per-frame path against (F,4,4) GT cameras of the same frames."""
    gt = np.asarray(gt_world_from_camera, np.float64)[:, :3, 3]
    pred = np.asarray(path.cameras.world_from_camera, np.float64)[:, :3, 3]
    if len(pred) != len(gt):
        raise ValueError(f"the path has {len(pred)} frames, the ground truth {len(gt)}")
    placed = path.placed()
    fit = placed if placed.sum() >= 3 else np.ones(len(gt), bool)
    sim = umeyama_sim3(pred[fit], gt[fit])
    err = np.linalg.norm(apply_sim3(pred, *sim) - gt, axis=1)
    return {"placed": float(placed.mean()), "ate_cm": 100 * float(np.sqrt(np.mean(err ** 2))),
            "ate_placed_cm": 100 * float(np.sqrt(np.mean(err[placed] ** 2))) if placed.any() else float("nan")}


def run_product(video: Path, intrinsics: Optional[np.ndarray] = None) -> tuple[FramePath, Dict]:
    """The default geometry (``--semantics none``) on ``video``: its per-frame path, and what it told the user
    about it ({"warned": the coverage warning or None, "focal": its focal length in px, "focal_from_lines":
    the vanishing points' focal length or None})."""
    from ..jobs import JobContext
    from ..pipeline import ReconstructSettings, reconstruct_video

    k = None if intrinsics is None else (intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2])
    scene = reconstruct_video(video, JobContext(), ReconstructSettings(intrinsics=k, semantics=None))
    lines = (scene.metadata.get("focal_from_lines") or {}).get("focal")
    return scene.frame_path, {"warned": scene.metadata["coverage"].get("warning"),
                              "focal": float(scene.cameras.intrinsics[0, 0, 0]), "focal_from_lines": lines}


def run_peer(video: Path, step: int = 2, intrinsics: Optional[np.ndarray] = None, threads: int = 2) -> FramePath:
    """Plain pycolmap on every ``step``-th frame at the video's resolution; its per-frame path."""
    import pycolmap

    from ..video import iter_frames

    pycolmap.logging.minloglevel = 3
    work = Path(tempfile.mkdtemp(prefix="ov3r_peer_"))
    try:
        (work / "images").mkdir()
        stamps, sampled, size = [], [], (0, 0)
        for fr in iter_frames(video, None):
            stamps.append(fr.timestamp)
            if fr.index % step == 0:
                sampled.append(fr.index)
                size = (fr.image.shape[1], fr.image.shape[0])
                cv2.imwrite(str(work / "images" / f"{fr.index:06d}.png"), cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR))
        reader = pycolmap.ImageReaderOptions()
        if intrinsics is not None:
            reader.camera_model = "PINHOLE"
            reader.camera_params = ",".join(str(float(v)) for v in
                                            (intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]))
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = threads
        pycolmap.extract_features(work / "db.db", work / "images", camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = threads
        pycolmap.match_sequential(work / "db.db", matching_options=matching, device=pycolmap.Device.cpu)
        opts = pycolmap.IncrementalPipelineOptions()
        opts.num_threads = threads
        (work / "sparse").mkdir()
        models = pycolmap.incremental_mapping(work / "db.db", work / "images", work / "sparse", options=opts)
        if not models:
            raise RuntimeError("the peer registered no model")
        rec = max(models.values(), key=lambda r: r.num_reg_images())
        reg = sorted((int(im.name.split(".")[0]), im) for im in rec.images.values() if im.has_pose)
        wfc = np.zeros((len(reg), 4, 4), np.float32)
        for row, (_, im) in enumerate(reg):
            wfc[row] = world_from_camera(im)
        K = np.asarray(next(iter(rec.cameras.values())).calibration_matrix(), np.float32)
        cams = Cameras(np.repeat(K[None], len(reg), 0), wfc, np.array([stamps[i] for i, _ in reg]),
                       np.array([i for i, _ in reg], np.int32), size)
        return place_frames(np.asarray(stamps), np.asarray(sampled), cams)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _row(name: str, who: str, fn) -> Dict:
    t0 = time.perf_counter()
    try:
        path, info = fn()  # the FramePath, and what the side reported beside it
    except Exception as exc:  # noqa: BLE001 - a side that fails is a result, not a crash of the table
        return {"scene": name, "side": who, "error": f"{exc.__class__.__name__}: {exc}",
                "s": time.perf_counter() - t0, "placed": 0.0}
    return {"scene": name, "side": who, "s": time.perf_counter() - t0, "_path": path, **info}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.peer", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["suite"], help="scene folders, config JSONs or a named set")
    p.add_argument("--step", type=int, default=2, help="the peer uses every step-th frame")
    p.add_argument("--intrinsics", action="store_true", help="give both sides the true intrinsics")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each side per video (both sides' threaded mapping is not deterministic): "
                        "the table gives medians and the range")
    a = p.parse_args(argv)
    rows: List[Dict] = []
    for folder in resolve_scenes(a.scenes):
        sc = load_scene(folder)
        name = sc["info"]["config"]["name"]
        gt = sc["cameras"]["world_from_camera"]
        K = sc["cameras"]["intrinsics"][0] if a.intrinsics else None
        for run in range(a.repeat):
            for who, fn in (("ov3r", lambda: run_product(sc["video"], K)),
                            ("pycolmap", lambda: (run_peer(sc["video"], a.step, K), {}))):
                row = {**_row(name, who, fn), "run": run}
                path = row.pop("_path", None)
                if path is not None:
                    row.update(score_path(path, gt))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(_table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


def _table(rows: List[Dict]) -> str:
    """Markdown: per (scene, side) the median over runs (a failed run counts as 0 % placed), with the
    range of the ATE over all frames when there are several runs, and in how many runs the product warned
    (coverage, disagreeing solves, an uncertain focal length); then each side's mean of the medians."""
    out = ["| scene | side | runs | placed % | ATE all frames cm | ATE placed cm | warned | s |",
           "|---|---|---|---|---|---|---|---|"]
    means: Dict[str, List] = {"ov3r": [], "pycolmap": []}
    for key in dict.fromkeys((r["scene"], r["side"]) for r in rows):
        rs = [r for r in rows if (r["scene"], r["side"]) == key]
        ok = [r for r in rs if "error" not in r]
        placed = float(np.median([r.get("placed", 0.0) for r in rs]))
        sec = float(np.median([r["s"] for r in rs]))
        if not ok:
            out.append(f"| {key[0]} | {key[1]} | {len(rs)} | 0 | failed: {rs[0]['error'][:60]} | | | {sec:.1f} |")
            continue
        ate = [r["ate_cm"] for r in ok]
        spread = f" ({min(ate):.2f}-{max(ate):.2f})" if len(ok) > 1 else ""
        failed = f", {len(rs) - len(ok)} failed" if len(ok) < len(rs) else ""
        warned = f"{sum(bool(r.get('warned')) for r in ok)} of {len(ok)}" if "warned" in ok[0] else ""
        out.append(f"| {key[0]} | {key[1]} | {len(rs)}{failed} | {100 * placed:.1f} | {np.median(ate):.2f}{spread} | "
                   f"{np.median([r['ate_placed_cm'] for r in ok]):.2f} | {warned} | {sec:.1f} |")
        means[key[1]].append((placed, float(np.median(ate))))
    for side, m in means.items():
        if m:
            out.append(f"{side}: mean placed {100 * np.mean([p for p, _ in m]):.1f} %, mean ATE "
                       f"{np.mean([e for _, e in m]):.2f} cm over {len(m)} videos (medians of the runs)")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
