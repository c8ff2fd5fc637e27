"""The height prior of the object cue: where each class's objects stand in a room, from training layouts.

    python -m core.train.class_heights [--rooms 300] [--per-class 200] [--out core/models/priors/class_heights.json]

For every class of the taxonomy, samples of the vertical span ``[z0, z1]`` (metres above the floor) and
the horizontal reach (the diagonal of the footprint, metres) of its objects in the layouts of random
**training** rooms (:func:`core.scenegen.suite.training_configs`: training-library furniture only;
layouts are generated, nothing is rendered). The room's structure comes from the same layouts: walls
span floor to ceiling, the floor and the ceiling are planes at 0 and at the room's height, doors and
windows are the layout's openings. :mod:`core.semantics.object_cues` reads the file. Deterministic:
the same arguments write the same prior. A new prior carries no query threshold calibrated with the
cue: ``OV3R_OBJECT_WEIGHT=<w> python -m core.bench.other_threshold --write`` adds one.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..models.shipped import CLASS_HEIGHTS

__all__ = ["layout_spans", "build_prior", "main"]


def layout_spans(layout) -> list[tuple[str, float, float, float]]:
    """``(class, z0, z1, reach)`` of every item, wall, opening, the floor and the ceiling of one
    :class:`core.scenegen.room_layout.RoomLayout` (metres)."""
    H = float(layout.height)
    xs, ys = zip(*layout.polygon)
    room_reach = math.hypot(max(xs) - min(xs), max(ys) - min(ys))
    out = [("floor", 0.0, 0.0, room_reach), ("ceiling", H, H, room_reach)]
    out += [("wall", 0.0, H, w.length) for w in layout.walls]
    out += [(op.kind, op.z0, op.z0 + op.height, op.width) for op in layout.openings]
    out += [(it.cls, it.z, it.top, math.hypot(it.size[0], it.size[1])) for it in layout.items]
    return out


def build_prior(rooms: int = 300, per_class: int = 200, seed: int = 0) -> dict:
    """The prior as written to JSON: ``{"source", "rooms", "classes": {name: {"z0", "z1", "reach"}}}``
    (lists of at most ``per_class`` samples each, centimetre precision)."""
    from ..scenegen.room_layout import generate_layout
    from ..scenegen.suite import training_configs

    spans: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    used = 0
    for cfg in training_configs(rooms, seed=seed):
        try:
            layout = generate_layout(cfg)
        except (RuntimeError, ValueError):  # some random rooms have no layout (as first_with_layout)
            continue
        used += 1
        for cls, z0, z1, reach in layout_spans(layout):
            spans[cls].append((z0, z1, reach))
    rng = np.random.default_rng(seed)
    classes = {}
    for cls in sorted(spans):
        s = np.asarray(spans[cls], np.float64)
        if len(s) > per_class:
            s = s[np.sort(rng.choice(len(s), per_class, replace=False))]
        classes[cls] = {k: np.round(s[:, i], 2).tolist() for i, k in enumerate(("z0", "z1", "reach"))}
    return {"source": f"core.scenegen.suite.training_configs({rooms}, seed={seed}): generated layouts, "
                      "training-library furniture", "rooms": used, "classes": classes}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.train.class_heights", description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=300)
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=CLASS_HEIGHTS)
    a = p.parse_args(argv)
    prior = build_prior(a.rooms, a.per_class, a.seed)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(prior, separators=(",", ":")) + "\n")
    print(f"{a.out}: {prior['rooms']} rooms, {len(prior['classes'])} classes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
