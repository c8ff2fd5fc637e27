"""Every seeded mapping run of a walk scored against the truth, and what the consensus would keep.

``python -m core.bench.mapping_runs --scenes dev_walk hard_dev validation --runs 5``

Keyframes and SfM as the engine makes them (``SfmSettings`` defaults), but mapped with all ``--runs`` seeds
(``run_sfm(all_runs=True)``). Prints one JSON line per walk: the lines' focal length and the true one (px of
the keyframes), each run's seed, registered keyframes, mean reprojection error (px), focal length (px) and ATE
over its registered keyframes (cm, after a similarity fit of the centres), the runs' pairwise ``agreement``, and
for a budget of 3 and of ``--runs`` runs the engine's flow replayed on the same runs (two, then one at a time
until two agree): how many ran, which was kept and its ATE. Choose on development rooms only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, Optional, Sequence

import numpy as np

from ..geometry.sfm.colmap_sfm import run_sfm
from ..geometry.sfm.engine import SfmSettings
from ..geometry.sfm.model_consensus import MappingRun, agreement, choose, needs_another_run
from ..geometry.sfm.vanishing_focal import vanishing_focal
from ..jobs import JobContext
from ..scenegen.suite import load_scene
from ..video import KeyframeSettings, iter_frames, select_keyframes
from .metrics import ate_rmse
from .run import resolve_scenes


def run_ate_cm(run: MappingRun, gt_world_from_camera: np.ndarray, frame_of_keyframe: np.ndarray) -> float:
    """RMS distance (cm) of a run's keyframe centres from the true ones after a similarity fit.

    gt_world_from_camera: (F,4,4) per video frame; frame_of_keyframe: (N,) video frame of each keyframe."""
    ate, _ = ate_rmse(run.world_from_camera[:, :3, 3], gt_world_from_camera[frame_of_keyframe[run.registered], :3, 3])
    return 100.0 * float(ate)


def replay(runs: list[MappingRun], budget: int) -> tuple[int, int]:
    """The engine's flow over the first runs of ``runs`` (two, then one at a time while no two agree, at most
    ``budget``): (runs used, index of the run kept)."""
    n = min(2, len(runs))
    while n < min(budget, len(runs)) and needs_another_run(runs[:n], budget):
        n += 1
    return n, choose(runs[:n]).chosen


def score_walk(video, gt_world_from_camera: np.ndarray, gt_focal: float, runs: int) -> Dict:
    kfs, _ = select_keyframes(iter_frames(video, 640), KeyframeSettings())
    frame_of = np.array([k.index for k in kfs])
    images = [k.image for k in kfs]
    lines, _ = vanishing_focal(images)
    kwargs = {**SfmSettings().sfm_kwargs(), "mapping_runs": runs}
    sparse = run_sfm(images, JobContext(), tracks=[k.tracks for k in kfs], all_runs=True, **kwargs)
    rows = []
    for r in sparse.runs:
        cam = next(iter(r.model.cameras.values()))
        rows.append({"seed": r.seed, "registered": int(len(r.registered)), "reproj_error": round(r.reproj_error, 3),
                     "focal": round(float(cam.params[0]), 1),
                     "ate_cm": round(run_ate_cm(r, gt_world_from_camera, frame_of), 2)})
    flows = {}
    for budget in sorted({3, runs}):
        n, k = replay(sparse.runs, budget)
        flows[str(budget)] = {"runs": n, "kept": k, "ate_cm": rows[k]["ate_cm"], "registered": rows[k]["registered"]}
    return {"keyframes": len(kfs), "lines_focal": None if lines is None else round(float(lines), 1),
            "true_focal": round(float(gt_focal), 1), "runs": rows,
            "agreement": [[round(agreement(a, b), 2) for b in sparse.runs] for a in sparse.runs], "flow": flows}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.mapping_runs", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["dev_walk"])
    p.add_argument("--runs", type=int, default=5, help="seeded mapping runs per walk, all kept")
    a = p.parse_args(argv)
    for folder in resolve_scenes(a.scenes):
        sc = load_scene(folder)
        K = np.asarray(sc["cameras"]["intrinsics"]).reshape(-1, 3, 3)[0]
        # the keyframes are at most 640 px on their longest side: the true focal length at that size
        w, h = sc["info"]["config"]["width"], sc["info"]["config"]["height"]
        focal = K[0, 0] * min(1.0, 640 / max(w, h))
        row = score_walk(sc["video"], sc["cameras"]["world_from_camera"], focal, a.runs)
        print(json.dumps({"scene": sc["info"]["config"]["name"], **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
