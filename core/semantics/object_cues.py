"""Where a segment stands, as a 3D cue of its descriptor: its height span and reach against each class's.

A table top is 0.7-0.8 m above the floor and a metre or two across, a cup stands on it, a picture hangs
at eye level, a wall spans floor to ceiling. The aligned cloud (``core.scene.align``: floor on Z = 0)
gives every segment its vertical span (quantiles of its points' heights) and its
horizontal reach (the diagonal of its footprint along its principal axes); the shipped prior
(:mod:`core.train.class_heights`) holds the spans and reaches of each class's objects in training
layouts. A segment *fits* an object as far as the object could contain it, so a part (a table's top, a
sofa's cushion) fits its whole and over-segmentation costs nothing, while a segment that leaks onto
its neighbours (a floor segment with the feet of the furniture on it) still mostly fits::

    fit(segment, object) = (share of the segment's height quantiles inside [z0 - tol, z1 + tol])
                           * min(1, (R + tol) / reach)
    fit_c = mean of fit over class c's objects
    a_c   = log((fit_c + eps) / (1 + eps))          # 0: fits them all; about log(eps): fits none

The descriptor moves by the smallest vector that shifts its cosine with each class's text embedding
``t_c`` by ``weight * a_c`` (ridge-regularised minimum-norm solution over the prior's classes)::

    u  = weight * T^T (T T^T + ridge I)^-1 a,        d' = normalise(d + u)

so a closed-set label becomes ``argmax_c cos(d, t_c) + weight * a_c``: a log-prior on the logits, kept
in descriptor space so that queries, labels and the scene contract stay as they are. The normalisation
lowers every cosine of a shifted segment by the same factor (the text embeddings are close to each other,
so telling them apart takes a long shift): the query threshold the scene records is calibrated on
descriptors made with the cue.

Scale: own geometry has none until the artist sets one, so heights are read in units of the cameras'
median height above the floor, taken as ``eye_height`` metres (a hand-held camera at eye level).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..models.shipped import CLASS_HEIGHTS
from ..scene import SemanticScene
from ..scene.align import alignment_transform, room_axes, transform_points
from .text_encoder import prompt

__all__ = ["VALIDATED_WEIGHT", "ObjectCueSettings", "load_prior", "calibrated_threshold", "write_calibration", "segment_spans",
           "class_fit", "logit_shift_vectors", "apply_object_cues"]


#: the weight chosen on the validation rooms (docs/experiments/semantics.md); the stage's default is off
VALIDATED_WEIGHT = 0.06


@dataclass
class ObjectCueSettings:
    weight: float = 0.0  # cosine shift per unit of log-fit; 0 = off
    tolerance: float = 0.1  # metres of slack on both heights and on the reach
    use_reach: bool = True  # False: heights only (object sizes are the training catalog's; heights are the room's)
    eps: float = 0.05  # floor of the fit: a class no object of which fits loses weight * log(eps / (1 + eps))
    quantile: float = 0.05  # a segment's span is its points' heights from this quantile to 1 - it
    levels: int = 11  # height quantiles per segment, evenly from ``quantile`` to 1 - ``quantile``
    eye_height: float = 1.5  # metres: the cameras' median height above the floor
    min_points: int = 20  # segments with fewer points get no cue
    ridge: float = 0.05  # regularises the shift over the class prompts' (correlated) embeddings
    prior: str | None = None  # another prior file than the shipped one


def _prior_file(path: str | None) -> Path:
    p = Path(path) if path else CLASS_HEIGHTS
    if not p.is_file():
        raise FileNotFoundError(f"the object cue's height prior is missing: {p} (python -m core.train.class_heights)")
    return p


@lru_cache(maxsize=4)
def load_prior(path: str | None = None) -> dict[str, np.ndarray]:
    """{class: (n, 3) float array of [z0, z1, reach] samples in metres} from a prior file."""
    raw = json.loads(_prior_file(path).read_text())["classes"]
    return {c: np.stack([v["z0"], v["z1"], v["reach"]], 1).astype(np.float64) for c, v in raw.items()}


def calibrated_threshold(encoder_sha256: str, weight: float, path: str | None = None) -> float | None:
    """The "other" / query threshold calibrated on descriptors of the image encoder ``encoder_sha256`` shifted
    by this prior at ``weight`` (``python -m core.bench.other_threshold --write`` with the cue on); None if none was."""
    for c in json.loads(_prior_file(path).read_text()).get("other_threshold", []):
        if c["encoder_sha256"] == encoder_sha256 and abs(c["weight"] - weight) < 1e-9:
            return float(c["threshold"])
    return None


def write_calibration(encoder_sha256: str, weight: float, threshold: float, info: dict, path: str | None = None) -> Path:
    """Store a calibrated threshold in the prior file (replacing one for the same encoder and weight)."""
    p = _prior_file(path)
    data = json.loads(p.read_text())
    keep = [c for c in data.get("other_threshold", [])
            if not (c["encoder_sha256"] == encoder_sha256 and abs(c["weight"] - weight) < 1e-9)]
    data["other_threshold"] = keep + [{"encoder_sha256": encoder_sha256, "weight": weight, "threshold": threshold,
                                       "calibration": info}]
    p.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    return p


def segment_spans(scene: SemanticScene, st: ObjectCueSettings, align: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each segment's heights (S, levels): quantiles of its points' heights above the floor, its reach
    (S,): the diagonal of its footprint, both in metres (nominal, see the module doc), and (S,) bool:
    which segments have enough points to be measured.

    align: the scene's 4x4 alignment (floor on Z = 0) if already known; raises ValueError when the cloud
    has no floor under the cameras.
    """
    pts = np.asarray(scene.points, np.float64)
    wfc = np.asarray(scene.cameras.world_from_camera, np.float64)
    if align is None:
        align = alignment_transform(pts, wfc, axes=room_axes(scene))
    eye = np.median(transform_points(wfc[:, :3, 3], align)[:, 2])
    if not eye > 0:
        raise ValueError("the cameras are not above the floor the alignment found")
    S = len(scene.segments)
    heights = np.zeros((S, st.levels))
    reach = np.zeros(S)
    ok = np.zeros(S, bool)
    seg = np.asarray(scene.segment_id)
    keep = np.flatnonzero(seg >= 0)
    order = keep[np.argsort(seg[keep], kind="stable")]
    bounds = np.searchsorted(seg[order], np.arange(S + 1))
    levels = np.linspace(st.quantile, 1.0 - st.quantile, st.levels)
    for s in range(S):
        idx = order[bounds[s]:bounds[s + 1]]
        if len(idx) < st.min_points:
            continue
        p = transform_points(pts[idx], align) * (st.eye_height / eye)
        xy = p[:, :2] - p[:, :2].mean(0)
        _, vecs = np.linalg.eigh(xy.T @ xy)
        lo, hi = np.quantile(xy @ vecs, (st.quantile, 1.0 - st.quantile), axis=0)
        heights[s] = np.quantile(p[:, 2], levels)
        reach[s] = float(np.hypot(*(hi - lo)))
        ok[s] = True
    return heights, reach, ok


def class_fit(heights: np.ndarray, reach: np.ndarray, prior: dict[str, np.ndarray], classes: list[str],
              tolerance: float) -> np.ndarray:
    """(S, C) how well each segment (heights (S, L), reach (S,)) fits each class's prior objects, in [0, 1]
    (the module doc's ``fit_c``)."""
    out = np.zeros((len(heights), len(classes)))
    for j, c in enumerate(classes):
        z0, z1, R = prior[c].T  # (n,)
        inside = ((heights[:, None, :] >= z0[None, :, None] - tolerance)
                  & (heights[:, None, :] <= z1[None, :, None] + tolerance)).mean(2)  # (S, n)
        wide = np.minimum(1.0, (R[None] + tolerance) / np.maximum(reach[:, None], 1e-9))
        out[:, j] = (inside * wide).mean(1)
    return out


def logit_shift_vectors(text: np.ndarray, shifts: np.ndarray, ridge: float) -> np.ndarray:
    """(S, D) smallest vectors u with ``u @ t_c ~= shifts[s, c]`` for the unit text rows ``text`` (C, D)."""
    gram = text @ text.T + ridge * np.eye(len(text))
    return np.linalg.solve(gram, shifts.T).T @ text


def apply_object_cues(scene: SemanticScene, text_encoder, st: ObjectCueSettings, align: np.ndarray | None = None
                      ) -> dict:
    """Shift the descriptors of ``scene``'s segments by where they stand, in place.

    text_encoder: embeds prompts in the scene's text space (``query.text_encoder_for``).
    Returns what the scene records: ``{"weight", "segments", "classes"}`` (``"reason"`` when it could not run).
    The caller records the threshold calibrated with the cue (:func:`calibrated_threshold`).
    """
    record: dict = {"weight": st.weight, "tolerance": st.tolerance, "eye_height": st.eye_height}
    if st.weight <= 0 or not len(scene.segments):
        return {**record, "segments": 0}
    prior = load_prior(st.prior)
    try:
        heights, reach, ok = segment_spans(scene, st, align)
    except (ValueError, np.linalg.LinAlgError) as e:
        return {**record, "weight": 0.0, "segments": 0, "reason": f"no floor to measure heights from: {e}"}
    classes = sorted(prior)
    t = np.asarray(text_encoder.encode([prompt(c) for c in classes]), np.float64)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    d = np.array(scene.segments.descriptor, np.float64)
    if t.shape[1] != d.shape[1]:
        return {**record, "weight": 0.0, "segments": 0,
                "reason": f"text embeddings of dimension {t.shape[1]}, descriptors {d.shape[1]}"}
    fit = class_fit(heights[ok], reach[ok] if st.use_reach else np.zeros(int(ok.sum())), prior, classes, st.tolerance)
    a = np.log((fit + st.eps) / (1.0 + st.eps))
    d[ok] += logit_shift_vectors(t, st.weight * a, st.ridge)
    d[ok] /= np.maximum(np.linalg.norm(d[ok], axis=1, keepdims=True), 1e-12)
    scene.segments.descriptor = d.astype(np.float32)
    return {**record, "segments": int(ok.sum()), "classes": len(classes)}
