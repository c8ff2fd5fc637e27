"""The lifting's settings, measured: each scene segmented and described once, every lifting setting scored.

    python -m core.bench.lift_study --scenes validation --engine sfm \
        --variants '{"default": {}, "iou0.4": {"merge_iou": 0.4}}' [--json out.json]

Per scene, the default pipeline runs once (``--engine sfm``: ``reconstruct_video`` on the video with the true
intrinsics, as ``ov3r bench``; ``gt-geometry``: the GT cloud subsample and 30 GT keyframes), and what the stage
hands the lifting (the scene before lifting, each keyframe's masks and descriptors) is kept in memory. Each
variant then lifts again with its :class:`core.semantics.lifting.LiftSettings` fields (unset fields: the
defaults), applies the structure cue as the stage does, labels every segment with its best class of the
taxonomy and is scored by the DESIGN.md protocol, one confusion matrix pooled over the scenes. Also printed:
the largest segment's share of the points (a lifting that chains surfaces together shows there first). Each variant
keeps the lifting's averaged descriptors: a fused descriptor (``descriptor: fused``) is not re-applied, so run it
with the default's plain mean descriptors.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

__all__ = ["captured_lifting", "relift", "main"]


@contextlib.contextmanager
def captured_lifting() -> Iterator[list[dict]]:
    """While open, every ``lift_into_scene`` call of the semantics stage also records its inputs:
    ``{"scene": copy before lifting, "masks", "descriptors", "space_id", "spacing"}``, appended to the list."""
    from ..semantics import lifting

    calls: list[dict] = []
    original = lifting.lift_into_scene

    def recording(scene, frame_masks, frame_descriptors, space_id, settings=None, spacing=None):
        calls.append({"scene": copy.deepcopy(scene), "masks": frame_masks, "descriptors": frame_descriptors,
                      "space_id": space_id, "spacing": spacing})
        return original(scene, frame_masks, frame_descriptors, space_id, settings, spacing)

    lifting.lift_into_scene = recording
    try:
        yield calls
    finally:
        lifting.lift_into_scene = original


def relift(inputs: dict, variant: dict):
    """A copy of the recorded scene lifted with ``variant``'s LiftSettings fields and the stage's structure
    cue (``structure_weight`` overrides its weight)."""
    from ..semantics.lifting import LiftSettings, lift_into_scene
    from ..semantics.stage import SemanticsSettings
    from ..semantics.structure_cues import StructureSettings, apply_structure_cues
    from ..semantics.text_encoder import SPACE_ID, default_encoder

    names = {f.name for f in fields(LiftSettings)}
    unknown = set(variant) - names - {"structure_weight"}
    if unknown:
        raise ValueError(f"not LiftSettings fields: {sorted(unknown)}")
    scene = copy.deepcopy(inputs["scene"])
    lift = LiftSettings(**{k: v for k, v in variant.items() if k in names})
    lift_into_scene(scene, inputs["masks"], inputs["descriptors"], inputs["space_id"], lift, inputs["spacing"])
    d = SemanticsSettings()
    weight = float(variant.get("structure_weight", d.structure_weight))
    if weight > 0 and len(scene.segments) and inputs["space_id"] == SPACE_ID:  # as the stage: its text space only
        apply_structure_cues(scene, default_encoder(), StructureSettings(weight=weight, surfaces=d.structure_surfaces))
    return scene


def _run_once(engine: str, bench: dict):
    """-> (the lifting inputs the default pipeline recorded, keyframe frame indices)."""
    from ..jobs import JobContext
    from ..semantics.stage import SemanticsSettings, run_semantics

    with captured_lifting() as calls:
        if engine == "gt-geometry":
            from .eval_scene import gt_scene

            res, images, _, _ = gt_scene(bench["root"], frames=30, points=200_000)
            run_semantics(res, images, JobContext(), SemanticsSettings.from_env("compact"))
        else:
            from ..pipeline import ReconstructSettings, reconstruct_video

            K = bench["cameras"]["intrinsics"]
            settings = ReconstructSettings(engine=engine, intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
                                           semantics="compact")
            reconstruct_video(bench["video"], JobContext(), settings)
    if len(calls) != 1:
        raise RuntimeError(f"expected one lifting, the pipeline made {len(calls)}")
    return calls[0]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.lift_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["validation"])
    p.add_argument("--engine", default="sfm", help="a geometry engine (own geometry) or 'gt-geometry'")
    p.add_argument("--variants", required=True, help="JSON {name: {LiftSettings field: value}}")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    from ..scenegen.suite import load_scene
    from ..scenegen.taxonomy import CLASSES
    from . import metrics as M
    from .run import _closed_set_labels, resolve_scenes
    from .semantic_metrics import confusion_matrix, score_cells, semantic_scores, transfer_labels

    variants = json.loads(a.variants)
    confs = {v: np.zeros((len(CLASSES), len(CLASSES)), np.int64) for v in variants}
    rooms: dict[str, dict] = {v: {} for v in variants}
    for path in resolve_scenes(a.scenes):
        bench = load_scene(path)
        name = bench["info"]["config"]["name"]
        inputs = _run_once(a.engine, bench)
        gt_pts = bench["gt_cloud"]["points"].astype(np.float64)
        pts = np.asarray(inputs["scene"].points, np.float64)
        wfc = np.asarray(inputs["scene"].cameras.world_from_camera, np.float64)
        gt_w = bench["cameras"]["world_from_camera"][np.asarray(inputs["scene"].cameras.frame_index)]
        aligned = M.apply_sim3(pts, *M.align_cloud(pts, gt_pts, wfc, gt_w))
        for v, settings in variants.items():
            scene = relift(inputs, settings)
            tl = transfer_labels(gt_pts, aligned, _closed_set_labels(scene), k=5)
            conf = confusion_matrix(bench["gt_cloud"]["semantic"], tl, len(CLASSES))
            confs[v] += conf
            sizes = np.bincount(scene.segment_id[scene.segment_id >= 0])
            rooms[v][name] = {"miou": semantic_scores(conf, CLASSES)["miou"], "segments": len(scene.segments),
                              "largest": float(sizes.max(initial=0) / max(len(pts), 1))}
        print(name + ": " + ", ".join(f"{v} {100 * r[name]['miou']:.2f} ({100 * r[name]['largest']:.0f} %)"
                                      for v, r in rooms.items()), file=sys.stderr, flush=True)
    out = {}
    print("| variant | mIoU | mAcc | f-mIoU | head | common | tail | floor | wall | ceiling | largest segment, "
          "median % | per room mIoU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for v in variants:
        sem = semantic_scores(confs[v], CLASSES)
        cells = score_cells(sem, ("floor", "wall", "ceiling"))
        cells.append(f"{100 * np.median([r['largest'] for r in rooms[v].values()]):.1f}")
        cells.append(" ".join(f"{100 * r['miou']:.2f}" for r in rooms[v].values()))
        out[v] = {**sem, "rooms": rooms[v], "confusion": confs[v].tolist()}
        print(f"| {v} | " + " | ".join(cells) + " |")
    if a.json:
        a.json.write_text(json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
