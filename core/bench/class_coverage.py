"""Which classes a benchmark run's mIoU is made of, and how much training data each one had.

A room set's mIoU averages over the classes present in it, so two sets with different class lists
are not comparable by their mIoU alone. This splits one ``ov3r bench --json`` run's per-class IoU by
(a) whether another room set (``heldout``, ``validation``, ``suite``) places the class, from the rooms'
layouts (no render needed), and (b) how many training-library models the class has::

    python -m core.bench.class_coverage out/suite.json --rooms heldout

Prints a markdown table (class, GT share, IoU, oracle-descriptor IoU with ``--oracle``, main confusion,
training / test models, in the other set) and the mIoU of each group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set

from .per_class import _mean, _pct
from ..scenegen.splits import models_per_class
from ..scenegen.taxonomy import STRUCTURE_CLASSES

__all__ = ["room_set_classes", "coverage", "markdown", "main"]

#: Groups of object classes by their number of training-library models: (label, lowest, highest).
MODEL_BINS = (("with no training models", 0, 0), ("with 1-4 training models", 1, 4),
              ("with 5 or more training models", 5, None))


def room_set_classes(name: str) -> Set[str]:
    """Classes a room set places (its layouts' items plus the structure classes every room has).
    ``name``: ``"heldout"`` (8 rooms), ``"validation"`` (8) or ``"suite"`` (the 5 test rooms)."""
    from ..scenegen.room_layout import generate_layout
    from ..scenegen.suite import heldout_configs, test_suite, validation_configs

    cfgs = {"heldout": lambda: heldout_configs(8), "validation": lambda: validation_configs(8),
            "suite": test_suite}[name]()
    out = set(STRUCTURE_CLASSES)
    for cfg in cfgs:
        out.update(item.cls for item in generate_layout(cfg).items)
    return out


def coverage(per_class: Dict[str, Dict], other: Iterable[str], train_models: Dict[str, int],
             test_models: Optional[Dict[str, int]] = None, ceiling: Optional[Dict[str, Dict]] = None) -> Dict:
    """``per_class``: a run's ``semantic["per_class"]``; ``other``: the other room set's classes;
    ``ceiling``: optionally the ``per_class`` of the same rooms with oracle descriptors
    (``ov3r bench --semantics oracle``): what the segments and the lifting allow per class.

    Returns ``{"rows": [...], "groups": {label: {"classes", "miou", "ceiling_miou"}}}`` (``ceiling_miou``
    None without ``ceiling``; means NaN for empty groups); rows sorted by GT
    share. Structure classes count as having training data (the in-scene crops of training rooms)."""
    other = set(other)
    total = sum(v["gt_count"] for v in per_class.values()) or 1
    rows = []
    for c, v in sorted(per_class.items(), key=lambda kv: -kv[1]["gt_count"]):
        rows.append({"class": c, "share": v["gt_count"] / total, "iou": v["iou"], "confused": v.get("confused_with"),
                     "train_models": None if c in STRUCTURE_CLASSES else int(train_models.get(c, 0)),
                     "test_models": None if c in STRUCTURE_CLASSES or test_models is None else int(test_models.get(c, 0)),
                     "in_other": c in other,
                     "ceiling": ceiling[c]["iou"] if ceiling and c in ceiling else None})
    groups: Dict[str, List[str]] = {"in other": [r["class"] for r in rows if r["in_other"]],
                                    "not in other": [r["class"] for r in rows if not r["in_other"]],
                                    "of structure": [r["class"] for r in rows if r["train_models"] is None]}
    for label, lo, hi in MODEL_BINS:
        groups[label] = [r["class"] for r in rows if r["train_models"] is not None
                         and lo <= r["train_models"] and (hi is None or r["train_models"] <= hi)]

    def ceiling_mean(cs):
        return _mean([ceiling[c]["iou"] for c in cs if c in ceiling]) if ceiling else None

    return {"rows": rows, "groups": {k: {"classes": v, "miou": _mean([per_class[c]["iou"] for c in v]),
                                         "ceiling_miou": ceiling_mean(v)} for k, v in groups.items()}}


def markdown(cov: Dict, other_name: str = "other") -> str:
    lines = [f"| class | GT % | IoU | oracle IoU | confused with | training models | test models | in {other_name} |",
             "|---|---|---|---|---|---|---|---|"]
    for r in cov["rows"]:
        tm = "" if r["train_models"] is None else r["train_models"]
        te = "" if r["test_models"] is None else r["test_models"]
        lines.append(f"| {r['class']} | {_pct(r['share'])} | {_pct(r['iou'])} | {_pct(r['ceiling'])} | {r['confused'] or ''} "
                     f"| {tm} | {te} "
                     f"| {'yes' if r['in_other'] else ''} |")
    lines.append("")
    for k, g in cov["groups"].items():
        if not g["classes"]:
            continue
        label = k.replace("in other", f"in {other_name}")
        oracle = f" (oracle descriptors: {_pct(g['ceiling_miou'])})" if g["ceiling_miou"] is not None else ""
        lines.append(f"- mIoU over the {len(g['classes'])} classes {label}: {_pct(g['miou'])}{oracle}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.bench.class_coverage", description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="an `ov3r bench --json` file")
    ap.add_argument("--oracle", type=Path, default=None,
                    help="the same rooms' `ov3r bench --semantics oracle --json` file: per-class ceiling")
    ap.add_argument("--rooms", default="heldout", choices=("heldout", "validation", "suite"),
                    help="the room set whose classes to split by")
    a = ap.parse_args(argv)
    per_class = json.loads(a.run.read_text())["semantic"]["per_class"]
    ceiling = json.loads(a.oracle.read_text())["semantic"]["per_class"] if a.oracle else None
    cov = coverage(per_class, room_set_classes(a.rooms), models_per_class(test=False), models_per_class(test=True), ceiling)
    print(markdown(cov, a.rooms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
