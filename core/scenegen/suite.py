"""The standard test suite, the training-set generator and the render cache.

- :func:`test_suite`: 5 fixed rooms (living, bedroom, kitchen, office, mixed L-shaped),
  all furniture from the test library ``BlendSwap-CC-0`` (:mod:`core.scenegen.splits`).
- :func:`training_configs`: any number of random rooms from the training libraries.
- :func:`validation_configs`: rooms for choosing settings without looking at the test suite:
  training libraries, another seed than the training rooms, named ``val_*`` (no training set
  reads them: those take ``train_*`` rooms).
- :func:`hard_configs`: the HARD set for geometry, two halves of 3 rooms (``hard_dev_*`` and
  ``hard_test_*``, :data:`HARD_ROOM`: 480x360, 120 frames at 15 fps): flat single-colour pale
  surfaces and plain furniture (``surfaces="flat"``), strong light changes in two rooms of each half
  (``light_changes``), and the ``hard_walk`` trajectory in two (rotations in place, fast pans,
  close-ups of blank walls; the third walks ``walk_scan``). The two halves are built alike but with
  other seeds and room types: ``hard_dev`` furnished from the training libraries, ``hard_test`` from
  the test library. Settings are chosen on ``hard_dev`` only; ``hard_test`` only reports.
- :func:`cached_scene`: render once per config hash under ``$OV3R_CACHE/bench/<hash>``
  (default ``~/.cache/ov3r/bench/<hash>``), written to a temp folder and renamed into place.

``python -m core.scenegen.suite [--frames N --width W --height H]`` renders the suite
(``--hard dev|test|all`` the hard set).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..cache import cache_dir
from .room_config import RoomConfig, config_hash
from .splits import TEST_LIBRARIES, check_training_config, training_libraries

__all__ = ["test_suite", "training_configs", "training_rooms", "TRAINING_ROOM", "validation_configs", "hard_configs",
           "HARD_ROOM", "named_rooms", "ROOM_SETS", "cache_root", "cached_scene", "scene_dir", "load_scene"]

_SUITE = [
    dict(name="test_living", seed=101, room_type="living", room_width=5.6, room_depth=4.4, shape="rect",
         num_objects=16, lighting="day", trajectory="walk_loop"),
    dict(name="test_bedroom", seed=202, room_type="bedroom", room_width=4.6, room_depth=4.0, shape="rect",
         num_objects=12, lighting="evening", trajectory="walk_scan"),
    dict(name="test_kitchen", seed=303, room_type="kitchen", room_width=5.0, room_depth=3.8, shape="rect",
         num_objects=18, lighting="overcast", trajectory="walk_loop"),
    dict(name="test_office", seed=404, room_type="office", room_width=6.0, room_depth=4.8, shape="L",
         num_objects=20, lighting="day", trajectory="walk_loop"),
    dict(name="test_mixed", seed=505, room_type="mixed", room_width=6.4, room_depth=5.0, shape="L",
         num_objects=24, lighting="overcast", trajectory="walk_scan"),
]


def test_suite(**overrides) -> List[RoomConfig]:
    """The 5 standard test scenes (640x480, 150 frames at 15 fps unless overridden)."""
    return [RoomConfig(libraries=TEST_LIBRARIES, **{**d, **overrides}) for d in _SUITE]


test_suite.__test__ = False  # not a pytest test


def training_configs(n: int, seed: int = 0, **overrides) -> List[RoomConfig]:
    """``n`` random training rooms from the training libraries (never the test library)."""
    rng = np.random.default_rng([seed, 9001])
    libs = training_libraries()
    out = []
    for i in range(n):
        w = float(np.round(rng.uniform(3.6, 7.0), 1))
        d = float(np.round(rng.uniform(3.2, min(w, 5.5)), 1))
        kw = dict(name=f"train_{seed}_{i}", seed=int(rng.integers(1 << 30)), libraries=libs,
                  room_type=str(rng.choice(["living", "bedroom", "kitchen", "office", "mixed"])),
                  room_width=w, room_depth=d, room_height=float(np.round(rng.uniform(2.4, 3.0), 2)),
                  shape=str(rng.choice(["rect", "L"], p=[0.7, 0.3])), num_objects=int(rng.integers(8, 26)),
                  lighting=str(rng.choice(["day", "evening", "overcast"])),
                  trajectory=str(rng.choice(["walk_loop", "walk_scan"])))
        kw.update(overrides)
        out.append(RoomConfig(**kw))
    return out


#: How the training rooms are rendered unless a training config says otherwise: sized for a 2-core CPU
#: (about a second a frame with Cycles 8 samples); the GT cloud is not used for training, so kept cheap.
TRAINING_ROOM = dict(width=224, height=168, frames=40, fps=4.0, samples=8, gt_points=20_000)


def assert_training_rooms(cfgs: Sequence[RoomConfig]) -> None:
    """Refuse any room that may use a test-library model."""
    bad = [c.name for c in cfgs if set(c.libraries) & set(TEST_LIBRARIES)]
    if bad:
        raise AssertionError(f"training rooms use the test library {TEST_LIBRARIES}: {bad[:5]}")
    for c in cfgs:
        check_training_config(c)


def training_rooms(n: int, seed: int = 0, **overrides) -> List[RoomConfig]:
    """The first ``n`` training rooms of ``seed`` whose layout generates, rendered as ``TRAINING_ROOM``
    unless overridden (deterministic: rooms without a valid layout are skipped)."""
    kw = {**TRAINING_ROOM, **overrides}
    cfgs = first_with_layout(lambda m: training_configs(m, seed, **kw), n)
    assert_training_rooms(cfgs)
    return cfgs


VALIDATION_SEED = 1  # the training rooms use seed 0


def first_with_layout(make: Callable[[int], List[RoomConfig]], n: int) -> List[RoomConfig]:
    """The first ``n`` configs of the sequence ``make(m)`` whose layout generates (some random rooms
    have none: ``core.scenegen.room_layout`` raises); ``make(m)`` must extend ``make(m')`` for m > m'."""
    from .room_layout import generate_layout

    m = n
    while True:
        out: List[RoomConfig] = []
        for c in make(m):
            try:
                generate_layout(c)
            except (ValueError, RuntimeError):
                continue
            out.append(c)
            if len(out) == n:
                return out
        m += max(2, n // 4)


def validation_configs(n: int = 8, **overrides) -> List[RoomConfig]:
    """The first ``n`` validation rooms whose layout generates (320x240, 40 frames at 4 fps).

    Random rooms like :func:`training_configs` (training libraries: the furniture models may have
    been seen in training, the rooms have not) with seed ``VALIDATION_SEED`` and names ``val_<i>``,
    so that no training set picks them up. For settings that must not be chosen on the test suite.
    """
    kw = dict(width=320, height=240, frames=40, fps=4.0, samples=8, gt_points=120_000)
    kw.update(overrides)
    return first_with_layout(lambda m: [c.replace(name=f"val_{i}") for i, c in
                                        enumerate(training_configs(m, VALIDATION_SEED, **kw))], n)


HELDOUT_SEED = 2


def heldout_configs(n: int = 8, **overrides) -> List[RoomConfig]:
    """The first ``n`` held-out validation rooms whose layout generates (320x240, 40 frames at 4 fps):
    random rooms like :func:`validation_configs`, furnished from the validation library only (Sweet
    Home 3D's default catalog, ``core.scenegen.validation_library``: in neither training nor test), named
    ``heldout_<i>``. For settings that must generalise to furniture no model has seen."""
    from .validation_library import VALIDATION_LIBRARY

    kw = dict(width=320, height=240, frames=40, fps=4.0, samples=8, gt_points=120_000,
              libraries=(VALIDATION_LIBRARY,))
    kw.update(overrides)
    return first_with_layout(lambda m: [c.replace(name=f"heldout_{i}") for i, c in
                                        enumerate(training_configs(m, HELDOUT_SEED, **kw))], n)


#: How the hard rooms are rendered: about a second a frame on an idle 2-core CPU (Cycles 2 samples,
#: OpenImageDenoise without its guide prefilter: plain walls come out clean, no sample noise on them).
HARD_ROOM = dict(width=480, height=360, frames=120, fps=15.0, samples=2, fast_denoise=True, surfaces="flat")

# The seeds of the hard_walk rooms leave blank walls for the close-ups (trajectory.closeup_spots).
_HARD = {
    "dev": [
        dict(name="hard_dev_0", seed=619, room_type="living", room_width=6.4, room_depth=5.0, shape="rect",
             num_objects=10, lighting="day", light_changes=True, trajectory="hard_walk"),
        dict(name="hard_dev_1", seed=626, room_type="office", room_width=7.0, room_depth=5.4, shape="L",
             num_objects=12, lighting="overcast", light_changes=False, trajectory="hard_walk"),
        dict(name="hard_dev_2", seed=630, room_type="bedroom", room_width=5.6, room_depth=4.4, shape="rect",
             num_objects=12, lighting="evening", light_changes=True, trajectory="walk_scan"),
    ],
    "test": [
        dict(name="hard_test_0", seed=713, room_type="kitchen", room_width=6.4, room_depth=5.0, shape="rect",
             num_objects=10, lighting="day", light_changes=True, trajectory="hard_walk"),
        dict(name="hard_test_1", seed=725, room_type="mixed", room_width=7.0, room_depth=5.4, shape="L",
             num_objects=12, lighting="overcast", light_changes=False, trajectory="hard_walk"),
        dict(name="hard_test_2", seed=730, room_type="living", room_width=5.6, room_depth=4.4, shape="rect",
             num_objects=12, lighting="evening", light_changes=True, trajectory="walk_scan"),
    ],
}


def hard_configs(half: str, **overrides) -> List[RoomConfig]:
    """The 3 rooms of one half of the hard set: ``"dev"`` (``hard_dev_*``, training-library furniture:
    choose settings on these) or ``"test"`` (``hard_test_*``, test-library furniture: report only)."""
    if half not in _HARD:
        raise ValueError(f"hard set half must be 'dev' or 'test', got {half!r}")
    libs = training_libraries() if half == "dev" else TEST_LIBRARIES
    cfgs = [RoomConfig(libraries=libs, **{**HARD_ROOM, **d, **overrides}) for d in _HARD[half]]
    if half == "dev":
        assert_training_rooms(cfgs)
    return cfgs


_DEV_WALK = [dict(seed=7071, room_type="living", lighting="day", trajectory="walk_loop"),
             dict(seed=7072, room_type="bedroom", lighting="evening", trajectory="walk_scan"),
             dict(seed=7073, room_type="kitchen", lighting="overcast", trajectory="walk_loop"),
             dict(seed=7074, room_type="office", lighting="day", trajectory="walk_scan"),
             dict(seed=7075, room_type="mixed", lighting="evening", trajectory="walk_loop"),
             dict(seed=7076, room_type="living", lighting="overcast", trajectory="walk_scan")]


def dev_walk_configs() -> List[RoomConfig]:
    """Six textured walks rendered like the suite's, small and fast (320x240, 150 frames at 15 fps, about 3
    minutes each on 2 cores), training-library furniture, the suite's room types and both walks: for choosing
    geometry settings (the mapping's outcome varies from room to room, so a choice needs several)."""
    libs = training_libraries()
    cfgs = [RoomConfig(name=f"dev_walk_{i}", room_width=5.0, room_depth=4.0, num_objects=12, width=320, height=240,
                       frames=150, fps=15.0, samples=2, fast_denoise=True, libraries=libs, **d)
            for i, d in enumerate(_DEV_WALK)]
    assert_training_rooms(cfgs)
    return cfgs


def dev_walk_640_configs() -> List[RoomConfig]:
    """The development walks at the test suite's 640x480 (``dev640_*``, 8-10 minutes each to render on 2 cores):
    where SIFT's scales and the focal length's self-calibration act as on the test rooms (a 320-px walk hides
    both: docs/experiments/geometry.md)."""
    return [c.replace(name=f"dev640_{i}", width=640, height=480) for i, c in enumerate(dev_walk_configs())]


#: The named room sets of :func:`named_rooms` (and ``ov3r bench --scenes``).
ROOM_SETS = ("suite", "validation", "heldout", "hard_dev", "hard_test", "dev_walk", "dev_walk_640")


def named_rooms(kind: str, n: int = 8) -> List[RoomConfig]:
    """The configs of a named room set: ``"suite"`` (the test suite), ``"validation"`` (``val_*``),
    ``"heldout"`` (``heldout_*``; ``n`` rooms of these two), ``"hard_dev"`` or ``"hard_test"`` (the two
    halves of the hard set, 3 rooms each: tune on ``hard_dev``, report ``hard_test``), ``"dev_walk"``
    (six small textured walks for choosing geometry settings) or ``"dev_walk_640"`` (the same at 640x480)."""
    sets = {"suite": test_suite, "validation": lambda: validation_configs(n), "heldout": lambda: heldout_configs(n),
            "hard_dev": lambda: hard_configs("dev"), "hard_test": lambda: hard_configs("test"),
            "dev_walk": dev_walk_configs, "dev_walk_640": dev_walk_640_configs}
    assert set(sets) == set(ROOM_SETS)
    if kind not in sets:
        raise ValueError(f"unknown room set {kind!r} (have {sorted(sets)})")
    return sets[kind]()


def cache_root() -> Path:
    return cache_dir("bench")


def scene_dir(cfg: RoomConfig, root: Optional[Path] = None) -> Path:
    return (Path(root) if root is not None else cache_root()) / config_hash(cfg)


def cached_scene(cfg: RoomConfig, root: Optional[Path] = None, log=None, **render_kwargs) -> Path:
    """Folder of the rendered scene, rendering it first if it is not cached."""
    from .room_render import render_room

    final = scene_dir(cfg, root)
    if (final / "scene.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name[:16]}-", dir=final.parent))
    try:
        render_room(cfg, tmp, log=log, **render_kwargs)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "scene.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_scene(path: Path) -> Dict:
    """Arrays and metadata of a rendered scene folder (video not decoded)."""
    path = Path(path)
    out: Dict = {"root": path, "video": path / "video.mp4"}
    out["info"] = json.loads((path / "scene.json").read_text())
    out["classes"] = json.loads((path / "classes.json").read_text())
    for name in ("cameras", "gt_cloud"):
        with np.load(path / f"{name}.npz") as z:
            out[name] = {k: z[k] for k in z.files}
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.scenegen.suite", description="Render the standard test suite.")
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--only", nargs="*", help="scene names")
    p.add_argument("--training", type=int, default=None, metavar="N",
                   help="render the first N training rooms instead (training libraries only; the rooms "
                        "`ov3r train clip3r --rooms N` and the OVS / compact room data use: 224x168, 40 frames)")
    p.add_argument("--heldout", type=int, default=None, metavar="N",
                   help="render the first N held-out validation rooms instead (heldout_*: the validation "
                        "library's furniture only, 320x240, 40 frames; `make validation-furniture` first)")
    p.add_argument("--validation", type=int, default=None, metavar="N",
                   help="render the first N validation rooms instead (val_*: training libraries, unseen "
                        "rooms, 320x240, 40 frames; for choosing settings without the test suite)")
    p.add_argument("--dev-walks", action="store_true",
                   help="render the development walks instead (dev_walk_*: textured, 320x240, 150 frames at 15 fps; "
                        "for choosing geometry settings)")
    p.add_argument("--dev-walks-640", action="store_true",
                   help="render the development walks at 640x480 instead (dev640_*: as --dev-walks, the test suite's size)")
    p.add_argument("--hard", choices=["dev", "test", "all"], default=None,
                   help="render the hard set instead (hard_dev_* / hard_test_*: flat surfaces, light changes, "
                        "hard_walk; 480x360, 120 frames; choose settings on dev only)")
    a = p.parse_args(argv)
    ov = {k: v for k, v in dict(frames=a.frames, width=a.width, height=a.height, samples=a.samples).items()
          if v is not None}
    t0 = time.perf_counter()
    if a.training:
        cfgs = training_rooms(a.training, **ov)
    elif a.validation:
        cfgs = validation_configs(a.validation, **ov)
    elif a.heldout:
        cfgs = heldout_configs(a.heldout, **ov)
    elif a.dev_walks:
        cfgs = dev_walk_configs()
    elif a.dev_walks_640:
        cfgs = dev_walk_640_configs()
    elif a.hard:
        cfgs = [c for h in (("dev", "test") if a.hard == "all" else (a.hard,)) for c in hard_configs(h, **ov)]
    else:
        cfgs = test_suite(**ov)
    for cfg in cfgs:
        if a.only and cfg.name not in a.only:
            continue
        ts = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {cfg.name} {config_hash(cfg)[:12]} ...", flush=True)
        d = cached_scene(cfg, log=sys.stdout)
        print(f"[{time.strftime('%H:%M:%S')}] {cfg.name} -> {d} ({time.perf_counter() - ts:.0f} s)", flush=True)
    print(f"suite done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
