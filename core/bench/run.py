"""``ov3r bench``: run an engine on benchmark scenes, print a markdown table (and JSON).

``--scenes`` takes rendered scene folders, folders of them, scene config JSON files, or
``suite`` (the standard test suite), ``validation`` (the ``val_*`` rooms for choosing settings),
``heldout``, ``hard_dev`` / ``hard_test`` (the hard set's halves: tune on dev, report test); configs
are rendered once and cached by hash (:func:`core.scenegen.suite.cached_scene`). ``--engine`` is any geometry engine of
``core.geometry`` (``sfm``, ...), ``gt`` (an oracle returning a subsample of the GT
cloud and GT cameras: checks the bench itself, scores ~perfect) or ``gt-geometry``
(GT cloud and cameras with the real semantics stage on the video's frames: the
semantic numbers "with GT geometry"). ``--semantics`` picks the image encoder
(``compact``, the default, ``openclip`` or ``none``).

Protocol (DESIGN.md): Sim(3) Umeyama on keyframe camera centres, then ICP on the
points; Acc / Comp (cm), F-score at 1 / 2 / 5 cm, ATE RMSE (cm). When the result has
segment labels that are class names of :mod:`core.scenegen.taxonomy`, semantic metrics
are computed over all scenes with one confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..scenegen.room_config import load_config
from ..scenegen.suite import ROOM_SETS, cached_scene, load_scene, named_rooms

__all__ = ["main", "resolve_scenes", "evaluate_scene"]


def resolve_scenes(items: Sequence[str]) -> List[Path]:
    out: List[Path] = []
    for s in items:
        if s in ROOM_SETS:  # validation, heldout, hard_dev, dev_walk(_640): for choosing settings; suite, hard_test: report only
            out += [cached_scene(c) for c in named_rooms(s)]
            continue
        p = Path(s)
        if p.is_file() and p.suffix == ".json":
            out.append(cached_scene(load_config(p)))
        elif (p / "scene.json").exists():
            out.append(p)
        elif p.is_dir():
            subs = sorted(q for q in p.iterdir() if (q / "scene.json").exists())
            cfgs = sorted(q for q in p.glob("*.json"))
            out += subs + [cached_scene(load_config(c)) for c in cfgs]
        else:
            raise FileNotFoundError(f"not a scene folder or config: {s}")
    return out


def _closed_set_labels(res) -> Optional[np.ndarray]:
    """(N,) class ids of the taxonomy for a SemanticScene with segments (closed vocabulary, as
    OVO / OpenNeRF: every segment takes its best class), or None without segments."""
    from ..semantics.query import label_scene
    from ..scenegen.taxonomy import CLASSES

    if not len(res.segments):
        return None
    label_scene(res, CLASSES[1:], threshold=-1.0)
    lut = np.array([CLASSES.index(lbl) if lbl in CLASSES else 0 for lbl in res.segments.label] + [0])
    return lut[np.where(res.segment_id >= 0, res.segment_id, len(res.segments))]


def _oracle_labels(res, images, scene_dir: Path) -> np.ndarray:
    """(N,) class ids from the real segmenter and lifting with an oracle descriptor (each 2D mask's
    GT majority class, ``eval_scene.oracle_describer``): the ceiling the segments allow a perfect
    encoder, per class, under the same label transfer and scoring as the encoders' runs."""
    from ..jobs import JobContext
    from ..bench.eval_scene import oracle_describer
    from ..semantics.stage import SemanticsSettings, run_semantics
    from ..scenegen.taxonomy import CLASSES

    describe = oracle_describer(scene_dir, res.cameras.frame_index, len(CLASSES))
    run_semantics(res, images, JobContext(), SemanticsSettings.from_env("none"), describe=describe)
    lut = np.append(np.asarray(res.segments.descriptor).argmax(1), 0) if len(res.segments) else np.zeros(1, int)
    return lut[np.where(res.segment_id >= 0, res.segment_id, len(lut) - 1)]


def _run_engine(engine: str, scene: Dict, semantics: Optional[str] = "compact", engine_settings: Optional[Dict] = None):
    """-> (points (N,3), labels (N,) class ids or None, keyframe world_from_camera, frame indices, seconds,
    the result's metadata: its stage timings in seconds and, from the sfm engine, its mapping runs)."""
    t0 = time.perf_counter()
    if engine == "gt-geometry":
        from ..jobs import JobContext
        from ..bench.eval_scene import gt_scene
        from ..semantics.stage import SemanticsSettings, run_semantics

        res, images, _, _ = gt_scene(scene["root"], frames=30, points=200_000)
        if semantics == "oracle":
            return (np.asarray(res.points, np.float64), _oracle_labels(res, images, scene["root"]),
                    np.asarray(res.cameras.world_from_camera, np.float64), np.asarray(res.cameras.frame_index),
                    time.perf_counter() - t0, {})
        if semantics:
            run_semantics(res, images, JobContext(), SemanticsSettings.from_env(semantics))
        return (np.asarray(res.points, np.float64), _closed_set_labels(res) if semantics else None,
                np.asarray(res.cameras.world_from_camera, np.float64), np.asarray(res.cameras.frame_index),
                time.perf_counter() - t0, res.metadata)
    if engine == "gt":
        gt = scene["gt_cloud"]
        rng = np.random.default_rng(0)
        idx = rng.choice(len(gt["points"]), size=min(len(gt["points"]), 100_000), replace=False)
        Wc = scene["cameras"]["world_from_camera"]
        fi = np.arange(0, len(Wc), max(1, len(Wc) // 30))
        return gt["points"][idx], gt["semantic"][idx].astype(np.int64), Wc[fi], fi, time.perf_counter() - t0, {}
    from ..jobs import JobContext
    from ..pipeline import ReconstructSettings, reconstruct_video

    K = scene["cameras"]["intrinsics"]
    settings = ReconstructSettings(engine=engine, intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2]),
                                   semantics=semantics or None, engine_settings=dict(engine_settings or {}))
    res = reconstruct_video(scene["video"], JobContext(), settings)
    return (np.asarray(res.points, np.float64), _closed_set_labels(res), np.asarray(res.cameras.world_from_camera,
            np.float64), np.asarray(res.cameras.frame_index), time.perf_counter() - t0, res.metadata)


def evaluate_scene(engine: str, path: Path, semantics: Optional[str] = "compact",
                   engine_settings: Optional[Dict] = None) -> Dict:
    from . import metrics as M
    from .semantic_metrics import confusion_matrix, transfer_labels
    from ..scenegen.taxonomy import CLASSES

    from ..jobs import JobError

    scene = load_scene(path)
    gt_pts = scene["gt_cloud"]["points"].astype(np.float64)
    gt_W = scene["cameras"]["world_from_camera"]
    try:
        pts, labels, Wc, fi, secs, meta = _run_engine(engine, scene, semantics, engine_settings)
    except JobError as exc:  # the product refused the video: the room counts, every GT point missed
        row = {"scene": scene["info"]["config"]["name"], "hash": scene["info"]["hash"][:12], "engine": engine,
               "frames": len(gt_W), "points": 0, "error": str(exc)}
        if semantics:
            gt_sem = scene["gt_cloud"]["semantic"]
            row["_conf"] = confusion_matrix(gt_sem, np.zeros_like(gt_sem), len(CLASSES))
        return row
    timings = dict(meta.get("timings") or {})
    n_frames = len(gt_W)
    row: Dict = {"scene": scene["info"]["config"]["name"], "hash": scene["info"]["hash"][:12], "engine": engine,
                 "frames": n_frames, "seconds": secs, "fps": n_frames / max(secs, 1e-9), "points": int(len(pts))}
    row.update({f"{k}_s": float(v) for k, v in timings.items() if k.startswith("semantics.")})
    if meta.get("mapping"):  # whether the seeded mapping runs agreed, and which one was kept (a fold shows here)
        row["mapping"] = meta["mapping"]
    if len(pts) == 0 or len(fi) < 3:
        row["error"] = "too few points or cameras"
        return row
    ate, _ = M.ate_rmse(Wc[:, :3, 3], gt_W[fi, :3, 3])
    sim = M.align_cloud(pts, gt_pts, Wc, gt_W[fi])
    aligned = M.apply_sim3(pts, *sim)
    ac = M.accuracy_completeness(aligned, gt_pts)
    fs = M.fscore(aligned, gt_pts, (0.01, 0.02, 0.05))
    row.update({"ate_cm": 100 * ate, "acc_cm": 100 * ac["acc"], "comp_cm": 100 * ac["comp"]})
    for d, v in fs.items():
        row[f"f@{int(round(d * 100))}cm"] = v["fscore"]
    if labels is not None:
        tl = transfer_labels(gt_pts, aligned, labels, k=5)
        row["_conf"] = confusion_matrix(scene["gt_cloud"]["semantic"], tl, len(CLASSES))
    return row


def _markdown(rows: List[Dict], cols: Sequence[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.2f}" if isinstance(v, float) else str(v))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="ov3r bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["suite"], help="scene folders, config JSONs, 'suite', 'validation', 'heldout', "
                        "'hard_dev', 'hard_test', 'dev_walk' or 'dev_walk_640'")
    p.add_argument("--engine", default="sfm", help="geometry engine name, or 'gt' (oracle)")
    p.add_argument("--semantics", default="compact", choices=["compact", "openclip", "oracle", "none"],
                   help="image encoder of the semantics stage (none: geometry only; oracle: each 2D mask's GT "
                        "class, the segments' ceiling; gt-geometry only)")
    p.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                   help="engine settings (fields of e.g. SfmSettings; values in JSON: planar_fill=false)")
    p.add_argument("--json", type=Path, help="also write the results here")
    a = p.parse_args(argv)
    try:
        engine_settings = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    except ValueError:
        p.error("--set takes NAME=VALUE pairs with JSON values")
    if engine_settings:
        from ..geometry import get_engine

        try:
            get_engine(a.engine, **engine_settings)  # a typo fails here, not after the first room's decoding
        except (TypeError, ValueError) as exc:
            p.error(f"--set: {exc}")
    sem_kind = None if a.semantics == "none" else a.semantics
    if sem_kind == "oracle" and a.engine != "gt-geometry":
        p.error("--semantics oracle needs --engine gt-geometry")
    rows = [evaluate_scene(a.engine, s, sem_kind, engine_settings) for s in resolve_scenes(a.scenes)]
    cols = ["scene", "engine", "frames", "fps", "points", "ate_cm", "acc_cm", "comp_cm", "f@1cm", "f@2cm", "f@5cm"]
    print(_markdown(rows, cols + (["error"] if any("error" in r for r in rows) else [])))
    # each scene's confusion matrix too, so runs over parts of a room set can be pooled afterwards
    out: Dict = {"scenes": [{k: (v.tolist() if k == "_conf" else v) for k, v in r.items()} for r in rows]}
    confs = [r["_conf"] for r in rows if "_conf" in r]
    if confs:
        from .semantic_metrics import semantic_scores
        from ..scenegen.taxonomy import CLASSES

        sem = semantic_scores(sum(confs), CLASSES)
        out["semantic"] = sem
        print(_markdown([{k: 100 * sem[k] for k in ("miou", "macc", "fmiou", "head_miou", "common_miou",
                                                      "tail_miou")}],
                        ["miou", "macc", "fmiou", "head_miou", "common_miou", "tail_miou"]))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
