"""Pool the semantic scores of several ``ov3r bench --json`` runs, as if they were one run.

    python -m core.bench.pool living_sfm.json office_sfm.json ... [--json pooled.json]

``ov3r bench`` keeps each scene's confusion matrix in its JSON, so rooms measured in separate runs (a
room rendered later, a run split to fit beside other work) are scored by DESIGN.md's protocol over one
confusion matrix summed over all of them. A scene that appears in two files counts once (the last file
wins), so a rerun of one room replaces its earlier row. Prints the pooled mIoU / mAcc / f-mIoU / head /
common / tail, the structure classes' IoU, and the per-scene geometry rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..scenegen.taxonomy import CLASSES
from .semantic_metrics import semantic_scores

__all__ = ["pool_runs"]

STRUCTURE = ("floor", "wall", "ceiling")


def pool_runs(runs: Sequence[dict]) -> dict:
    """``runs``: parsed ``ov3r bench --json`` outputs -> ``{"scenes": [rows without the matrix],
    "semantic": semantic_scores of the summed confusion}`` (no "semantic" when no row has a matrix)."""
    by_scene: dict[str, dict] = {}
    for run in runs:
        for row in run.get("scenes", []):
            by_scene[row.get("hash") or row["scene"]] = row
    rows = list(by_scene.values())
    out: dict = {"scenes": [{k: v for k, v in r.items() if k != "_conf"} for r in rows]}
    confs = [np.asarray(r["_conf"], np.int64) for r in rows if "_conf" in r]
    if confs:
        out["semantic"] = semantic_scores(sum(confs), CLASSES)
    return out


def _iou(per_class: dict, name: str) -> str:
    v = (per_class.get(name) or {}).get("iou")
    return "-" if v is None else f"{100 * v:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.pool", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="ov3r bench --json files")
    p.add_argument("--json", type=Path, help="also write the pooled result here")
    a = p.parse_args(argv)
    pooled = pool_runs([json.loads(f.read_text()) for f in a.runs])
    for r in pooled["scenes"]:
        print(" | ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                         if k in ("scene", "engine", "ate_cm", "acc_cm", "comp_cm", "f@5cm", "error")))
    sem = pooled.get("semantic")
    if sem:
        print(f"{len(pooled['scenes'])} scenes pooled, {sem['num_present']} classes present")
        print("| mIoU | mAcc | f-mIoU | head | common | tail | " + " | ".join(f"{c} IoU" for c in STRUCTURE) + " |")
        print("|---" * (6 + len(STRUCTURE)) + "|")
        print("| " + " | ".join(f"{100 * sem[k]:.2f}" for k in ("miou", "macc", "fmiou", "head_miou", "common_miou",
                                                               "tail_miou"))
              + " | " + " | ".join(_iou(sem.get("per_class", {}), c) for c in STRUCTURE) + " |")
    if a.json:
        a.json.write_text(json.dumps(pooled, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
