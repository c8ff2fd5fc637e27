"""Make the committed real-scan test fixture: the `sfm` engine + shipped compact encoder on a
rendered test room, with per-point ground truth for the tests.

    .venv/bin/python bench/make_scan_fixture.py [--scene test_living] [--out tests/assets]

Writes ``<out>/scan_<room>.ov3r.npz`` (the SemanticScene exactly as ``ov3r reconstruct`` makes
it, GT intrinsics given) and ``<out>/scan_<room>_gt.npz``:

- ``gt_from_scan (4,4) float64``: Sim(3) taking scan coordinates to the renderer's world
  (Umeyama on keyframe camera centres, then ICP), floor at z=0, +Z up;
- ``point_class (N,) int16``: class id of the GT point nearest to each scan point (after
  ``gt_from_scan``), -1 beyond 5 cm; ids index ``classes``;
- ``classes``: the taxonomy's class names; ``room_size (3,)``: width, depth, height in metres;
- ``gt_centres (K,3)``: the GT camera centres of the scan's keyframes.

The room render comes from the benchmark cache (rendered once, ~10 minutes, if absent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.bench import metrics as M  # noqa: E402
from core.scenegen.suite import cached_scene, load_scene, test_suite  # noqa: E402
from core.scenegen.taxonomy import CLASSES  # noqa: E402
from core.jobs import JobContext  # noqa: E402
from core.pipeline import ReconstructSettings, reconstruct_video  # noqa: E402
from core.scene import save_scene  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", default="test_living")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "assets")
    args = ap.parse_args(argv)

    cfg = next(c for c in test_suite() if c.name == args.scene)
    sdir = cached_scene(cfg, log=sys.stdout)
    scene = load_scene(sdir)
    K = scene["cameras"]["intrinsics"]
    settings = ReconstructSettings(engine="sfm", intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]), semantics="compact")
    scan = reconstruct_video(scene["video"], JobContext(), settings)

    gt_pts = scene["gt_cloud"]["points"].astype(np.float64)
    gt_W = scene["cameras"]["world_from_camera"]
    fi = np.asarray(scan.cameras.frame_index)
    centres = np.asarray(scan.cameras.world_from_camera, np.float64)[:, :3, 3]
    _, sim = M.ate_rmse(centres, gt_W[fi, :3, 3])
    sim = M.icp_refine(np.asarray(scan.points, np.float64), gt_pts, init=sim, max_correspondence_distance=0.1)
    aligned = M.apply_sim3(np.asarray(scan.points, np.float64), *sim)
    dist, nn = cKDTree(gt_pts).query(aligned, k=1)
    point_class = np.where(dist < 0.05, scene["gt_cloud"]["semantic"][nn], -1).astype(np.int16)

    args.out.mkdir(parents=True, exist_ok=True)
    name = args.scene.removeprefix("test_")
    scan_path = args.out / f"scan_{name}.ov3r.npz"
    save_scene(scan, scan_path)
    lay = scene["info"]["layout"]
    np.savez_compressed(
        args.out / f"scan_{name}_gt.npz",
        gt_from_scan=M.sim3_to_matrix(*sim), point_class=point_class, classes=np.array(CLASSES),
        room_size=np.array([lay["width"], lay["depth"], lay["height"]], np.float64), gt_centres=gt_W[fi, :3, 3],
    )
    present = {CLASSES[c]: int(n) for c, n in zip(*np.unique(point_class[point_class > 0], return_counts=True))}
    print(json.dumps({"scan": str(scan_path), "points": len(scan.points), "keyframes": len(fi),
                      "segments": len(scan.segments), "labelled_fraction": float((point_class >= 0).mean()),
                      "classes": present}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
