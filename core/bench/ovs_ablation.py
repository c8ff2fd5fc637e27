"""The paper's 2D-3D OVS ablation on the test split, with GT geometry.

    python -m core.bench.ovs_ablation --scenes suite [--frames 30] [--points 200000] [--json out.json]

Per scene, exactly like ``ov3r bench --engine gt-geometry``: a subsample of the GT cloud, the
GT cameras and the video's frames go through the real semantics stage (classical segmenter,
compact encoder, lifting). The segments are computed **once**, then described four ways:

- ``full``: the OVS fusion with every path (DINO only with a local DINOv2 checkpoint
  configured, ``OV3R_DINO_CHECKPOINT``, and weights trained with it);
- ``no_dino``: the fusion without the DINO path;
- ``no_3d``: the fusion without the 3D point-encoder path;
- ``mean``: the plain averaged descriptor (the lifting's weighted mean of mask descriptors).

Each variant labels every segment with its best class of the taxonomy (closed vocabulary,
prompt "This is a photo of a {}"), then the DESIGN.md protocol (:mod:`.semantic_metrics`):
Sim(3) on camera centres + ICP, each GT point takes the majority label of its 5 nearest
predicted points, one confusion matrix over all scenes, mIoU / mAcc / f-mIoU and head /
common / tail thirds by GT frequency. The test rooms use only the test library, never seen
in training (neither by the compact encoder nor by the fusion).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["VARIANTS", "ablate_scene", "main"]

VARIANTS = ("full", "no_dino", "no_3d", "mean")
LABELS = {"full": "full fusion", "no_dino": "w/o DINO", "no_3d": "w/o 3D encoder", "mean": "plain averaged"}


def _labels_for(scene, desc: np.ndarray, text: np.ndarray) -> np.ndarray:
    """(N,) taxonomy class id per point from segment descriptors (closed set, best class)."""
    d = desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
    best = (d @ text.T).argmax(1) + 1 if len(d) else np.zeros(0, np.int64)  # text rows = CLASSES[1:]
    lut = np.append(best, 0)
    return lut[np.where(scene.segment_id >= 0, scene.segment_id, len(best))]


def ablate_scene(path: Path, text: np.ndarray, frames: int = 30, points: int = 200_000,
                 weights: str | None = None, log=print) -> dict:
    """One scene -> {"scene", "seconds", "segments", "identical_full_no_dino", "_conf": {variant: (C,C)}}."""
    from ..jobs import JobContext
    from ..bench.eval_scene import gt_scene
    from ..semantics.stage import SemanticsSettings, run_semantics
    from . import metrics as M
    from .semantic_metrics import confusion_matrix, transfer_labels
    from ..scenegen.suite import load_scene
    from ..scenegen.taxonomy import CLASSES

    bench = load_scene(path)
    t0 = time.perf_counter()
    res, images, _, _ = gt_scene(path, frames=frames, points=points)
    st = SemanticsSettings.from_env("compact")
    st.descriptor = "fused"
    if weights:
        st.ovs_weights = weights
    cap: dict = {}
    run_semantics(res, images, JobContext(), st, capture=cap)
    fd = cap.get("describer")
    if fd is None:
        raise RuntimeError(f"the fusion did not run: {res.metadata['models']['descriptor']}")
    inputs = cap["segment_inputs"]
    desc = {"full": res.segments.descriptor.copy(), "no_dino": fd.describe(inputs, use_dino=False),
            "no_3d": fd.describe(inputs, use_points=False), "mean": cap["mean_descriptor"]}
    secs = time.perf_counter() - t0
    gt_pts = bench["gt_cloud"]["points"].astype(np.float64)
    gt_W = bench["cameras"]["world_from_camera"]
    fi = np.asarray(res.cameras.frame_index)
    pts = np.asarray(res.points, np.float64)
    sim = M.align_cloud(pts, gt_pts, np.asarray(res.cameras.world_from_camera, np.float64), gt_W[fi])
    aligned = M.apply_sim3(pts, *sim)
    confs = {}
    for v in VARIANTS:
        tl = transfer_labels(gt_pts, aligned, _labels_for(res, desc[v], text), k=5)
        confs[v] = confusion_matrix(bench["gt_cloud"]["semantic"], tl, len(CLASSES))
    row = {"scene": bench["info"]["config"]["name"], "seconds": secs, "segments": len(res.segments),
           "descriptor": res.metadata["models"]["descriptor"],
           "identical_full_no_dino": bool(np.array_equal(desc["full"], desc["no_dino"])),
           "changed_top1_vs_mean": {v: float(((desc[v] @ text.T).argmax(1) != (desc["mean"] @ text.T).argmax(1)).mean())
                                    for v in ("full", "no_3d")} if len(res.segments) else {},
           "_conf": confs}
    log(f"{row['scene']}: {row['segments']} segments, {secs:.0f}s")
    return row


def _markdown(rows: list[dict], cols: Sequence[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        body += "| " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |\n"
    return head + body


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.ovs_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["suite"], help="scene folders, config JSONs, or 'suite'")
    p.add_argument("--frames", type=int, default=30, help="keyframes per scene (as ov3r bench gt-geometry)")
    p.add_argument("--points", type=int, default=200_000, help="GT cloud subsample (as ov3r bench gt-geometry)")
    p.add_argument("--weights", default=None, help="OVS fusion weights (default: the shipped ones)")
    p.add_argument("--json", type=Path, help="also write the results (scores, per class, confusions) here")
    a = p.parse_args(argv)
    from ..semantics.text_encoder import TextEncoder
    from .run import resolve_scenes
    from .semantic_metrics import semantic_scores
    from ..scenegen.taxonomy import CLASSES

    text = TextEncoder().encode_prompts(CLASSES[1:])
    log = lambda m: print(m, file=sys.stderr, flush=True)
    rows = [ablate_scene(s, text, a.frames, a.points, a.weights, log) for s in resolve_scenes(a.scenes)]
    out: dict = {"scenes": [{k: v for k, v in r.items() if k != "_conf"} for r in rows], "variants": {}}
    table = []
    for v in VARIANTS:
        conf = sum(r["_conf"][v] for r in rows)
        sem = semantic_scores(conf, CLASSES)
        out["variants"][v] = {**sem, "confusion": conf.tolist()}
        table.append({"variant": LABELS[v], **{k: 100 * sem[k] for k in ("miou", "macc", "fmiou", "head_miou",
                                                                          "common_miou", "tail_miou")}})
    print(_markdown(table, ["variant", "miou", "macc", "fmiou", "head_miou", "common_miou", "tail_miou"]))
    same = all(r["identical_full_no_dino"] for r in rows)
    dino = rows[0]["descriptor"].get("dino", "") if rows else ""
    if same:
        print(f"DINO path unused ({dino}): the 'full fusion' and 'w/o DINO' rows are the same descriptors.")
    out["dino"] = dino
    out["full_equals_no_dino"] = same
    print(f"classes present: {out['variants']['mean']['num_present']}; groups: "
          + "; ".join(f"{g}: {', '.join(c)}" for g, c in out["variants"]["mean"]["groups"].items()))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
