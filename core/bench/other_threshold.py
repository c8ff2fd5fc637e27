"""Calibrate the "other" threshold of ``label_scene`` on the validation rooms (never the test suite).

An artist labels a room with a short vocabulary ("sofa, table, lamp"); a segment whose best
label scores below the threshold becomes "other". The right threshold depends on the
descriptor (the compact encoder's mean descriptors and the OVS fusion's live at different
cosine levels), so it is measured, not guessed:

1. each validation room (``core.scenegen.suite.validation_configs``: unseen rooms of training-library
   furniture) goes through the semantics stage with GT geometry (``eval_scene.gt_scene``);
   every 3D segment gets its GT class (majority of its points) and its point count;
2. ``trials`` random vocabularies per room: 2-8 of the room's present classes plus 0-3 absent
   ones; a segment whose class is in the vocabulary is right when it gets that label, one whose
   class is not (or is unlabelled) is right when it becomes "other";
3. the threshold maximising the balanced accuracy (mean of the two, each weighted by points).

``python -m core.bench.other_threshold [--weights OVS.safetensors] [--write]``: prints the curve
and the best threshold (``--scenes suite --at 0.27 0.77``: reports given thresholds on the test
suite, for the record; it never calibrates there); ``--write`` stores it (``other_threshold``) in the
metadata of the weights that made the descriptors: the fusion's for fused scenes, the compact image
encoder's for plain averaged ones. The semantics stage records it and ``label_scene`` and the add-on
use it by default.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RoomSegmentsGT", "balanced_accuracy", "best_threshold", "query_selection", "room_segments_gt", "segments_gt",
           "room_set_segments"]


@dataclass
class RoomSegmentsGT:
    """One room's segments: ``scores (T,S)`` cosine of each class text (taxonomy without "other")
    with each segment, ``gt (S,)`` GT class index into those T classes (-1: unlabelled),
    ``weight (S,)`` point counts; ``descriptor``: the stage's descriptor kind ("ovs_fusion", "mean");
    ``counts (S,T)`` points of each class in each segment and ``totals (T,)`` points of each class
    in the room (segmented or not), for query precision / recall (None: not measured);
    ``descriptors (S,D)`` the segments' descriptors, to score any other text (None: not kept)."""

    scores: np.ndarray
    gt: np.ndarray
    weight: np.ndarray
    descriptor: str = ""
    counts: np.ndarray | None = None
    totals: np.ndarray | None = None
    descriptors: np.ndarray | None = None


def room_segments_gt(scene_dir: Path, frames: int = 20, points: int = 150_000,
                     ovs_weights: Path | None = None) -> RoomSegmentsGT:
    """The stage (default settings: the shipped encoder and fusion, or ``ovs_weights``) on
    ``scene_dir`` with GT geometry."""
    from ..jobs import JobContext
    from ..bench.eval_scene import gt_scene
    from ..semantics.stage import SemanticsSettings, run_semantics
    from ..semantics.text_encoder import default_encoder, prompt
    from ..scenegen.taxonomy import CLASSES

    scene, images, _, sem = gt_scene(scene_dir, frames, points)
    st = SemanticsSettings.from_env("compact")
    st.ovs_weights = str(ovs_weights) if ovs_weights is not None else st.ovs_weights
    run_semantics(scene, images, JobContext(), st)
    return segments_gt(scene, sem, default_encoder().encode([prompt(c) for c in CLASSES[1:]]))


def segments_gt(scene, sem: np.ndarray, text: np.ndarray) -> RoomSegmentsGT:
    """:class:`RoomSegmentsGT` of a described scene whose points carry the GT classes ``sem`` (N,) (taxonomy
    ids), scored against ``text`` (T, D): the class embeddings of the taxonomy without "unlabeled"."""
    from ..semantics.query import segment_scores
    from ..scenegen.taxonomy import CLASSES

    S = len(scene.segments)
    seg = scene.segment_id
    ok = seg >= 0
    counts = np.zeros((S, len(CLASSES)), np.int64)
    np.add.at(counts, (seg[ok], sem[ok]), 1)
    gt = counts.argmax(1) - 1  # CLASSES[0] (unlabelled) -> -1
    kind = str((scene.metadata["models"].get("descriptor") or {}).get("kind", ""))
    totals = np.bincount(sem, minlength=len(CLASSES))[1:].astype(np.float64)
    return RoomSegmentsGT(segment_scores(scene, text), gt, counts.sum(1).astype(np.float64), kind,
                          counts[:, 1:].astype(np.float64), totals, scene.segments.descriptor.astype(np.float32))


def room_set_segments(kind: str, n: int, frames: int, cache: Path | None) -> list[RoomSegmentsGT]:
    """The segments of a named room set (``suite.named_rooms``; the stage with GT geometry and the
    settings' image encoder), from ``cache`` when it has them for the same room, frames and encoder
    weights (the file's SHA-256: a recalibrated or centred file is a new key)."""
    from ..hashing import file_sha256
    from ..scenegen.suite import cached_scene, named_rooms

    weights = file_sha256(_encoder_weights())[:12]
    out = []
    for cfg in named_rooms(kind, n):
        scene_dir = cached_scene(cfg)
        f = cache / f"{scene_dir.name[:16]}_{frames}_{weights}.npz" if cache is not None else None
        if f is not None and f.exists():
            z = np.load(f)
            out.append(RoomSegmentsGT(z["scores"], z["gt"], z["weight"], str(z["kind"]), z["counts"], z["totals"],
                                      z["descriptors"]))
            continue
        r = room_segments_gt(scene_dir, frames)
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            np.savez(f, scores=r.scores, gt=r.gt, weight=r.weight, kind=r.descriptor, counts=r.counts,
                     totals=r.totals, descriptors=r.descriptors)
        out.append(r)
    return out


def query_selection(rooms: Sequence[RoomSegmentsGT], thresholds: np.ndarray, min_points: int = 200
                    ) -> dict[str, np.ndarray]:
    """A text query selects the segments scoring >= threshold (the add-on's selection): per
    threshold, mean precision and recall over every (room, present class with >= ``min_points``
    points) pair, the class's own name as the query."""
    thr = np.asarray(thresholds, np.float64)
    prec, rec, n = np.zeros(len(thr)), np.zeros(len(thr)), 0
    for r in rooms:
        for c in np.flatnonzero(r.totals >= min_points):
            sel = r.scores[c][None, :] >= thr[:, None]  # (thr, S)
            tp = (sel * r.counts[:, c]).sum(1)
            chosen = (sel * r.weight).sum(1)
            prec += np.where(chosen > 0, tp / np.maximum(chosen, 1), 0.0)
            rec += tp / r.totals[c]
            n += 1
    return {"threshold": thr, "precision": prec / max(n, 1), "recall": rec / max(n, 1), "queries": np.array(n)}


def balanced_accuracy(rooms: Sequence[RoomSegmentsGT], thresholds: np.ndarray, trials: int = 200,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Per threshold: ``in_vocab`` (share of points of in-vocabulary segments given their label),
    ``out_vocab`` (share of the others labelled "other") and ``balanced`` (their mean), over
    ``trials`` random vocabularies per room (see the module docstring)."""
    rng = np.random.default_rng(seed)
    thr = np.asarray(thresholds, np.float64)
    hit_in = np.zeros(len(thr))
    hit_out = np.zeros(len(thr))
    tot_in = tot_out = 0.0
    for r in rooms:
        T = r.scores.shape[0]
        present = np.unique(r.gt[r.gt >= 0])
        absent = np.setdiff1d(np.arange(T), present)
        if len(present) < 2:
            continue
        for _ in range(trials):
            k = int(rng.integers(2, min(8, len(present)) + 1))
            vocab = np.concatenate([rng.choice(present, k, replace=False),
                                    rng.choice(absent, min(int(rng.integers(0, 4)), len(absent)), replace=False)])
            sc = r.scores[vocab]  # (V,S)
            best, top = vocab[sc.argmax(0)], sc.max(0)
            inv = np.isin(r.gt, vocab)
            right_label = inv & (best == r.gt)
            w_in, w_out = r.weight[inv], r.weight[~inv]
            tot_in += w_in.sum()
            tot_out += w_out.sum()
            # in vocabulary: right when labelled right and not rejected; else right when rejected
            hit_in += ((top[right_label][None, :] >= thr[:, None]) * r.weight[right_label]).sum(1)
            hit_out += ((top[~inv][None, :] < thr[:, None]) * w_out).sum(1)
    a_in = hit_in / max(tot_in, 1e-12)
    a_out = hit_out / max(tot_out, 1e-12)
    return {"threshold": thr, "in_vocab": a_in, "out_vocab": a_out, "balanced": (a_in + a_out) / 2}


def best_threshold(curve: dict[str, np.ndarray]) -> float:
    """The threshold of the curve's highest balanced accuracy (the middle one of ties)."""
    b = curve["balanced"]
    idx = np.flatnonzero(b >= b.max() - 1e-12)
    return float(curve["threshold"][idx[len(idx) // 2]])


def write_threshold(weights: Path, threshold: float, info: dict) -> None:
    """Store ``other_threshold`` (and how it was found) in the safetensors metadata of ``weights``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), "pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["other_threshold"] = f"{threshold:.4f}"
    meta["other_threshold_calibration"] = json.dumps(info)
    save_file(tensors, str(weights), metadata=meta)


def _encoder_weights() -> Path:
    """The image encoder weights the stage loads (the default compact weights or ``$OV3R_COMPACT_WEIGHTS``)."""
    from ..models.compact.encoder import DEFAULT_WEIGHTS
    from ..semantics.stage import SemanticsSettings

    return Path(SemanticsSettings.from_env("compact").compact_weights or DEFAULT_WEIGHTS)


def _calibrated_weights(descriptors: list[str], ovs_weights: Path | None) -> Path:
    """Where a threshold for these scenes' descriptors belongs: the OVS fusion's weights for fused
    scenes, the image encoder's (the default compact weights or ``$OV3R_COMPACT_WEIGHTS``) for mean ones."""
    if descriptors == ["ovs_fusion"] and ovs_weights is not None:
        return ovs_weights
    if descriptors == ["mean"]:  # the weights the stage loaded: the same settings resolve them
        return _encoder_weights()
    raise SystemExit(f"the rooms mixed descriptors ({descriptors}): nothing to write to")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.other_threshold", description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=8, help="validation rooms (rendered on first use)")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--weights", type=Path, default=None, help="OVS fusion weights (default: the shipped ones)")
    p.add_argument("--write", action="store_true", help="store the threshold in the weights' metadata")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--scenes", choices=["validation", "heldout", "suite"], default="validation",
                   help="'suite': report --at thresholds on the test suite (never calibrates there); "
                        "'heldout': the rooms of the validation library's furniture")
    p.add_argument("--at", type=float, nargs="*", default=None, help="report these thresholds only")
    p.add_argument("--cache", type=Path, default=None,
                   help="keep each room's segments here, keyed by the encoder weights (room_set_segments); "
                        "not with --weights")
    a = p.parse_args(argv)
    if a.cache is not None and a.weights is not None:
        p.error("--cache keys the rooms by the image encoder only: not with --weights")
    if a.scenes == "suite" and (a.write or not a.at):
        p.error("on the test suite only --at thresholds are reported (calibrate on the validation rooms)")
    from ..semantics.fused_descriptor import ovs_weights_path
    from ..scenegen.suite import cached_scene, named_rooms

    weights = ovs_weights_path(a.weights)
    if a.cache is not None:
        rooms = room_set_segments(a.scenes, a.rooms, a.frames, a.cache)
    else:
        rooms = [room_segments_gt(cached_scene(c), a.frames, ovs_weights=a.weights)
                 for c in named_rooms(a.scenes, a.rooms)]
    if a.at:
        c = balanced_accuracy(rooms, np.array(a.at), a.trials)
        q = query_selection(rooms, np.array(a.at))
        for i, t in enumerate(a.at):
            print(f"threshold {t:.2f}: balanced {c['balanced'][i]:.3f} (in vocabulary {c['in_vocab'][i]:.3f}, "
                  f"other {c['out_vocab'][i]:.3f}); a class-name query selects with precision "
                  f"{q['precision'][i]:.3f}, recall {q['recall'][i]:.3f} ({int(q['queries'])} queries)")
        return 0
    from ..semantics.stage import SemanticsSettings

    cue_weight = float(SemanticsSettings.from_env("compact").object_weight)  # the rooms were described with it
    curve = balanced_accuracy(rooms, np.round(np.arange(0.0, 1.0001, 0.01), 2), a.trials)
    thr = best_threshold(curve)
    i = int(np.argmin(np.abs(curve["threshold"] - thr)))
    q = query_selection(rooms, np.array([thr]))
    info = {"threshold": thr, "balanced": float(curve["balanced"][i]), "in_vocab": float(curve["in_vocab"][i]),
            "out_vocab": float(curve["out_vocab"][i]), "query_precision": float(q["precision"][0]),
            "query_recall": float(q["recall"][0]), "rooms": a.rooms, "frames": a.frames, "trials": a.trials,
            "segments": int(sum(len(r.gt) for r in rooms)), "descriptor": sorted({r.descriptor for r in rooms}),
            "object_cue_weight": cue_weight}
    for t, b, ai, ao in zip(curve["threshold"][::5], curve["balanced"][::5], curve["in_vocab"][::5],
                            curve["out_vocab"][::5]):
        print(f"threshold {t:.2f}: balanced {b:.3f} (in vocabulary {ai:.3f}, other {ao:.3f})")
    print(json.dumps(info))
    if a.json:
        a.json.write_text(json.dumps({**info, "curve": {k: v.tolist() for k, v in curve.items()}}, indent=1))
    if a.write and cue_weight:
        from ..semantics.object_cues import write_calibration

        from ..hashing import file_sha256

        target = write_calibration(file_sha256(_encoder_weights()), cue_weight, thr, info)
        print(f"wrote other_threshold = {thr:.2f} for the object cue at weight {cue_weight} into {target}")
    elif a.write:
        target = _calibrated_weights(info["descriptor"], weights)
        write_threshold(target, thr, info)
        print(f"wrote other_threshold = {thr:.2f} into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
