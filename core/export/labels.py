"""Labelled exports (no Blender): a PLY with the semantic per-point attributes and a labels
JSON beside it.

PLY vertex properties: everything :func:`core.export.ply.write_ply` writes (x y z, red green
blue, confidence, segment_id, frame_id) plus ``label_id`` (int, -1 = none) and ``score``
(float: the last query's score, or the label's score). The JSON names the labels:

    {"format": "ov3r.labels", "version": 1,
     "labels": [{"id": 0, "name": "sofa", "color": [r, g, b], "points": n}, ...],
     "segments": [{"id": 0, "label": "sofa", "score": 0.41, "points": n,
                   "box_center": [...], "box_axes": [[...]x3], "box_extent": [...]}, ...],
     "query": {"text": "...", "threshold": 0.3} | null}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..scene import SemanticScene

LABELS_FORMAT = "ov3r.labels"
LABELS_VERSION = 1

_FIELDS = [
    ("x", "<f4", "float"), ("y", "<f4", "float"), ("z", "<f4", "float"),
    ("red", "u1", "uchar"), ("green", "u1", "uchar"), ("blue", "u1", "uchar"),
    ("confidence", "<f4", "float"), ("segment_id", "<i4", "int"), ("frame_id", "<i4", "int"),
    ("label_id", "<i4", "int"), ("score", "<f4", "float"),
]


def labels_json_path(ply_path: str | os.PathLike) -> Path:
    """``room.ply`` -> ``room.labels.json``."""
    p = Path(ply_path)
    return p.with_name(p.stem + ".labels.json")


def write_labelled_ply(scene: SemanticScene, path: str | os.PathLike, label_id: np.ndarray | None = None,
                       score: np.ndarray | None = None, mask: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY of ``scene`` (or its points under ``mask``) with label_id + score."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_all = len(scene)
    label_id = np.full(n_all, -1, np.int32) if label_id is None else np.asarray(label_id, np.int32)
    score = np.zeros(n_all, np.float32) if score is None else np.asarray(score, np.float32)
    if label_id.shape != (n_all,) or score.shape != (n_all,):
        raise ValueError(f"label_id and score must have one value per point ({n_all})")
    sel = slice(None) if mask is None else np.asarray(mask, bool)
    pts = scene.points[sel]
    rec = np.empty(len(pts), dtype=[(name, dt) for name, dt, _ in _FIELDS])
    rec["x"], rec["y"], rec["z"] = pts.T
    rec["red"], rec["green"], rec["blue"] = scene.colors[sel].T
    rec["confidence"] = scene.confidence[sel]
    rec["segment_id"] = scene.segment_id[sel]
    rec["frame_id"] = scene.frame_id[sel]
    rec["label_id"] = label_id[sel]
    rec["score"] = score[sel]
    header = ["ply", "format binary_little_endian 1.0", "comment made by Ov3R (labelled)",
              f"element vertex {len(rec)}"]
    header += [f"property {ply} {name}" for name, _, ply in _FIELDS]
    header.append("end_header")
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(rec.tobytes())
    return path


def labels_document(scene: SemanticScene, names: Sequence[str], colors: np.ndarray | None = None,
                    label_id: np.ndarray | None = None, query: dict[str, Any] | None = None) -> dict[str, Any]:
    """The labels JSON as a dict (see the module docstring)."""
    colors = np.zeros((len(names), 3)) if colors is None else np.asarray(colors, np.float64)
    counts = (np.bincount(np.asarray(label_id)[np.asarray(label_id) >= 0], minlength=len(names))
              if label_id is not None else np.zeros(len(names), np.int64))
    seg = scene.segments
    seg_counts = np.bincount(scene.segment_id[scene.segment_id >= 0], minlength=len(seg))[: len(seg)]
    return {
        "format": LABELS_FORMAT,
        "version": LABELS_VERSION,
        "labels": [{"id": i, "name": str(n), "color": [round(float(c), 5) for c in colors[i]],
                    "points": int(counts[i])} for i, n in enumerate(names)],
        "segments": [{"id": i, "label": seg.label[i], "score": float(seg.score[i]), "points": int(seg_counts[i]),
                      "box_center": seg.box_center[i].tolist(), "box_axes": seg.box_axes[i].tolist(),
                      "box_extent": seg.box_extent[i].tolist()} for i in range(len(seg))],
        "query": query,
    }


def write_labels_json(path: str | os.PathLike, document: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def read_labels_json(path: str | os.PathLike) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("format") != LABELS_FORMAT:
        raise ValueError(f"{path}: not an Ov3R labels file")
    return doc


def safe_name(name: str) -> str:
    """A label as a file-name part: ``"tv stand/1"`` -> ``"tv_stand_1"``."""
    return re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("_") or "unlabeled"


def write_per_label(scene: SemanticScene, path: str | os.PathLike, label_id: np.ndarray, names: Sequence[str],
                    score: np.ndarray | None = None) -> list[Path]:
    """One PLY per label present: ``room.ply`` -> ``room_sofa.ply``, ``room_chair.ply`` ..."""
    path = Path(path)
    out = []
    for i, name in enumerate(names):
        mask = np.asarray(label_id) == i
        if mask.any():
            out.append(write_labelled_ply(scene, path.with_name(f"{path.stem}_{safe_name(name)}{path.suffix}"),
                                          label_id, score, mask))
    return out
