"""Scores in Blender's process, numpy only: cosine of the stored segment descriptors against
text embeddings (cheap: S x D), spread to points by indexing with ``segment_id``."""

from __future__ import annotations

import colorsys

import numpy as np

NO_SCORE = -1.0  # points without a segment: never above a threshold


class DimensionMismatch(ValueError):
    """The scan's descriptors are not in the text encoder's space."""


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def similarity(descriptors: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """(S,D) x (T,D) -> (S,T) cosine."""
    d, t = np.atleast_2d(descriptors), np.atleast_2d(text_emb)
    if d.shape[1] != t.shape[1]:
        raise DimensionMismatch(
            f"the scan's segment descriptors have {d.shape[1]} dimensions but the text encoder gives "
            f"{t.shape[1]}: the scan was made with another model")
    return _unit(d) @ _unit(t).T


def segment_scores(descriptors: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """(S,) best cosine over the query's texts."""
    sim = similarity(descriptors, text_emb)
    return sim.max(1).astype(np.float32) if sim.size else np.zeros(len(descriptors), np.float32)


def per_point(segment_values: np.ndarray, segment_id: np.ndarray, none_value: float) -> np.ndarray:
    """(N,) values of each point's segment; ``segment_id == -1`` picks ``none_value`` (appended last)."""
    ext = np.append(np.asarray(segment_values), np.asarray(none_value, np.asarray(segment_values).dtype))
    return ext[segment_id]


def label_segments(descriptors: np.ndarray, vocab_emb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(label index per segment, -1 when the best score < threshold; that best score)."""
    sim = similarity(descriptors, vocab_emb)
    if sim.shape[1] == 0:
        return np.full(len(descriptors), -1, np.int32), np.zeros(len(descriptors), np.float32)
    best = sim.argmax(1).astype(np.int32)
    score = sim[np.arange(len(best)), best].astype(np.float32)
    best[score < threshold] = -1
    return best, score


def palette(k: int) -> np.ndarray:
    """(k,3) distinct linear-RGB colours (golden-ratio hues)."""
    out = np.empty((k, 3), np.float32)
    for i in range(k):
        h = (0.07 + i * 0.618034) % 1.0
        s, v = (0.75, 0.95) if i % 2 == 0 else (0.55, 0.8)
        out[i] = [c ** 2.2 for c in colorsys.hsv_to_rgb(h, s, v)]
    return out
