"""Class-by-class comparison of two benchmark runs (``ov3r bench --json`` files).

Why two room sets score differently: is it the classes one has and the other lacks, or the
same classes scoring lower? Prints a markdown table (per class: GT share, IoU and the main
confusion in each run) and the mIoU of each run over the classes both have, over the classes
only one has, and over all of its own::

    python -m core.bench.per_class out/heldout.json out/test.json --names held-out test
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["compare", "markdown", "main"]


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def compare(a: Dict, b: Dict) -> Dict:
    """``a``, ``b``: the ``semantic`` dicts of two bench runs (``semantic_scores`` output).

    Returns ``{"rows": [...], "shared": [...], "only_a": [...], "only_b": [...],
    "miou": {"a_shared", "b_shared", "a_only", "b_only", "a_all", "b_all"}}``; rows are sorted
    by the class's GT share in ``b`` then ``a``; shares are fractions of each run's GT points.
    """
    pa, pb = a["per_class"], b["per_class"]
    na = sum(v["gt_count"] for v in pa.values()) or 1
    nb = sum(v["gt_count"] for v in pb.values()) or 1
    names = sorted(set(pa) | set(pb), key=lambda c: (-pb.get(c, {}).get("gt_count", 0) / nb,
                                                       -pa.get(c, {}).get("gt_count", 0) / na, c))
    rows = []
    for c in names:
        ra, rb = pa.get(c), pb.get(c)
        rows.append({"class": c,
                     "share_a": ra["gt_count"] / na if ra else 0.0, "iou_a": ra["iou"] if ra else None,
                     "confused_a": ra.get("confused_with") if ra else None,
                     "share_b": rb["gt_count"] / nb if rb else 0.0, "iou_b": rb["iou"] if rb else None,
                     "confused_b": rb.get("confused_with") if rb else None})
    shared = [c for c in names if c in pa and c in pb]
    only_a = [c for c in names if c in pa and c not in pb]
    only_b = [c for c in names if c in pb and c not in pa]
    miou = {"a_shared": _mean([pa[c]["iou"] for c in shared]), "b_shared": _mean([pb[c]["iou"] for c in shared]),
            "a_only": _mean([pa[c]["iou"] for c in only_a]), "b_only": _mean([pb[c]["iou"] for c in only_b]),
            "a_all": _mean([v["iou"] for v in pa.values()]), "b_all": _mean([v["iou"] for v in pb.values()])}
    return {"rows": rows, "shared": shared, "only_a": only_a, "only_b": only_b, "miou": miou}


def _pct(x: Optional[float]) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def markdown(cmp: Dict, names: Sequence[str] = ("A", "B")) -> str:
    """The comparison as a markdown table plus a summary line per class group."""
    na, nb = names
    lines = [f"| class | {na} GT % | {na} IoU | {na} confused with | {nb} GT % | {nb} IoU | {nb} confused with |",
             "|---|---|---|---|---|---|---|"]
    for r in cmp["rows"]:
        lines.append(f"| {r['class']} | {_pct(r['share_a'] or None)} | {_pct(r['iou_a'])} | {r['confused_a'] or ''} "
                     f"| {_pct(r['share_b'] or None)} | {_pct(r['iou_b'])} | {r['confused_b'] or ''} |")
    m = cmp["miou"]
    lines += ["",
              f"mIoU over the {len(cmp['shared'])} classes both have: {na} {_pct(m['a_shared'])}, {nb} {_pct(m['b_shared'])}; "
              f"over the {len(cmp['only_a'])} only in {na}: {_pct(m['a_only'])}; over the {len(cmp['only_b'])} only in "
              f"{nb}: {_pct(m['b_only'])}; all: {na} {_pct(m['a_all'])}, {nb} {_pct(m['b_all'])}."]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="first `ov3r bench --json` file")
    ap.add_argument("b", type=Path, help="second `ov3r bench --json` file")
    ap.add_argument("--names", nargs=2, default=["A", "B"], help="column names of the two runs")
    args = ap.parse_args(argv)
    a, b = (json.loads(p.read_text())["semantic"] for p in (args.a, args.b))
    print(markdown(compare(a, b), args.names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
