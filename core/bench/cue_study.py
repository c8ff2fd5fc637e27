"""The 3D cues of the descriptors, measured: segments described once, each cue setting scored on them.

    python -m core.bench.cue_study --scenes validation --variants '{"none": {}, "w0.05": {"object_weight": 0.05}}'
        [--cache DIR] [--json out.json]

Per scene, like ``ov3r bench --engine gt-geometry`` (GT cloud subsample, GT cameras, 30 keyframes, the
real semantics stage with the default settings) but with both cues off; the described scene is saved
under ``--cache`` (keyed by the scene's hash and the pipeline's settings) so that a second study reuses
it. Then each variant applies the structure cue (``structure_weight``, ``structure_surfaces``) and the
object cue (``object_weight`` and any other :class:`core.semantics.object_cues.ObjectCueSettings` field
prefixed ``object_``) to a copy, labels every segment with its best class of the taxonomy, and scores
the DESIGN.md protocol, one confusion matrix pooled over the scenes. Unset fields take the stage's
defaults, so ``{}`` is the default pipeline.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

__all__ = ["described_scene", "apply_variant", "main"]


def described_scene(path: Path, cache: Path):
    """(the scene's bench data, its SemanticScene described with both cues off), cached."""
    from ..jobs import JobContext
    from ..scene.io import load_scene as load_semantic, save_scene
    from ..scenegen.suite import load_scene
    from ..semantics.stage import SemanticsSettings, run_semantics
    from .eval_scene import gt_scene

    bench = load_scene(path)
    st = SemanticsSettings.from_env("compact")
    st.structure_weight, st.object_weight = 0.0, 0.0
    f = cache / f"{bench['info']['hash'][:16]}-{st.pooling}-{st.pool_scale}-{st.pool_min_side}-{st.pool_small_scale}.ov3r"
    if f.exists():
        return bench, load_semantic(f)
    res, images, _, _ = gt_scene(path, frames=30, points=200_000)
    run_semantics(res, images, JobContext(), st)
    cache.mkdir(parents=True, exist_ok=True)
    save_scene(res, f)
    return bench, load_semantic(f)


def apply_variant(scene, variant: dict) -> dict:
    """Apply the cues of ``variant`` to ``scene`` in place (the stage's defaults for unset fields);
    -> what each cue recorded."""
    from ..semantics.object_cues import ObjectCueSettings, apply_object_cues
    from ..semantics.stage import SemanticsSettings
    from ..semantics.structure_cues import StructureSettings, apply_structure_cues
    from ..semantics.text_encoder import default_encoder

    d = SemanticsSettings()
    sw = float(variant.get("structure_weight", d.structure_weight))
    surfaces = tuple(variant.get("structure_surfaces", d.structure_surfaces))
    obj = {f.name: variant[f"object_{f.name}"] for f in fields(ObjectCueSettings) if f"object_{f.name}" in variant}
    obj.setdefault("weight", float(variant.get("object_weight", d.object_weight)))
    out = {}
    if sw > 0:
        out["structure"] = apply_structure_cues(scene, default_encoder(), StructureSettings(weight=sw, surfaces=surfaces))
    out["object"] = apply_object_cues(scene, default_encoder(), ObjectCueSettings(**obj))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.cue_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["validation"])
    p.add_argument("--variants", required=True, help="JSON {name: {setting: value}}")
    p.add_argument("--cache", type=Path, default=None, help="described scenes (default: $OV3R_CACHE/cue_study)")
    p.add_argument("--json", type=Path)
    p.add_argument("--threshold", type=float, default=0.52, help="the query threshold the scenes record today")
    a = p.parse_args(argv)
    from ..cache import cache_dir
    from ..scenegen.taxonomy import CLASSES
    from . import metrics as M
    from .run import _closed_set_labels, resolve_scenes
    from scipy.spatial import cKDTree
    from ..semantics.text_encoder import default_encoder, prompt
    from .other_threshold import balanced_accuracy, best_threshold, query_selection, segments_gt
    from .semantic_metrics import confusion_matrix, score_cells, semantic_scores, transfer_labels

    variants = json.loads(a.variants)
    cache = a.cache or cache_dir("cue_study")
    confs = {v: np.zeros((len(CLASSES), len(CLASSES)), np.int64) for v in variants}
    rooms: dict[str, list] = {v: [] for v in variants}
    text = default_encoder().encode([prompt(c) for c in CLASSES[1:]])
    grid = np.round(np.arange(0.0, 1.0001, 0.01), 2)
    for path in resolve_scenes(a.scenes):
        bench, scene = described_scene(path, cache)
        gt_pts = bench["gt_cloud"]["points"].astype(np.float64)
        gt_W = bench["cameras"]["world_from_camera"]
        pts = np.asarray(scene.points, np.float64)
        sim = M.align_cloud(pts, gt_pts, np.asarray(scene.cameras.world_from_camera, np.float64),
                            gt_W[np.asarray(scene.cameras.frame_index)])
        aligned = M.apply_sim3(pts, *sim)
        point_gt = bench["gt_cloud"]["semantic"][cKDTree(gt_pts).query(aligned)[1]]
        for name, v in variants.items():
            s = copy.deepcopy(scene)
            rec = apply_variant(s, v)
            tl = transfer_labels(gt_pts, aligned, _closed_set_labels(s), k=5)
            confs[name] += confusion_matrix(bench["gt_cloud"]["semantic"], tl, len(CLASSES))
            rooms[name].append(segments_gt(s, point_gt, text))
        print(f"{bench['info']['config']['name']}: {len(scene.segments)} segments; {rec}", file=sys.stderr, flush=True)
    out = {}
    print("| variant | mIoU | mAcc | f-mIoU | head | common | tail | floor | wall | ceiling | door | window | table "
          f"| best 'other' threshold | balanced accuracy | query P / R at it | query P / R at {a.threshold} |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in variants:
        sem = semantic_scores(confs[name], CLASSES)
        out[name] = {**sem, "confusion": confs[name].tolist()}
        cells = score_cells(sem, ("floor", "wall", "ceiling", "door", "window", "table"))
        curve = balanced_accuracy(rooms[name], grid)
        best = best_threshold(curve)
        q = query_selection(rooms[name], np.array([best, a.threshold]))
        cells += [f"{best:.2f}", f"{curve['balanced'][np.searchsorted(grid, best)]:.3f}",
                  f"{q['precision'][0]:.2f} / {q['recall'][0]:.2f}", f"{q['precision'][1]:.2f} / {q['recall'][1]:.2f}"]
        out[name].update(other_threshold=best, balanced=float(curve["balanced"].max()))
        print(f"| {name} | " + " | ".join(cells) + " |")
    if a.json:
        a.json.write_text(json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
