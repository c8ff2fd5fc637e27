"""Text queries against a scene's 3D segments (cosine in the shared image-text space).

- ``segment_scores(scene, text_emb)``: (S,) or (T,S) cosine of each segment's descriptor.
- ``point_scores(scene, seg_scores)``: (N,) per point (points without a segment score ``fill``).
- ``query(scene, text, encoder)``: both, for one free-text query.
- ``label_scene(scene, vocab, threshold, encoder)``: best vocabulary label per segment
  ("other" below the threshold) into ``segments.label`` / ``segments.score``.
Text goes through the benchmark prompt "This is a photo of a {}" (``text_encoder.prompt``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..scene import SemanticScene
from .text_encoder import SPACE_ID, prompt

OTHER = "other"
#: The add-on's default vocabulary (its Preferences), comma-separated.
DEFAULT_VOCABULARY = ("wall, floor, ceiling, door, window, chair, armchair, sofa, table, desk, bed, nightstand, "
                      "lamp, plant, bookcase, cabinet, wardrobe, tv, refrigerator, sink, toilet, radiator, rug, "
                      "picture")


def parse_vocabulary(text: str) -> list[str]:
    """"chair, sofa ,, Chair\ntable" -> ["chair", "sofa", "table"]: commas or new lines, order kept,
    repeats dropped (case-insensitive, the first spelling kept)."""
    words: dict[str, str] = {}
    for w in text.replace("\n", ",").split(","):
        if w.strip():
            words.setdefault(w.strip().lower(), w.strip())
    return list(words.values())


DEFAULT_THRESHOLD = 0.2  # cosine; used when the scene's image encoder recorded none


class TextEncoderLike(Protocol):
    space_id: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SpaceMismatch(ValueError):
    """The scene's descriptors live in another text space than the encoder's."""


@dataclass
class QueryResult:
    """segment (S,) float32 cosine per segment; point (N,) float32 per point; order (S,) best first."""

    text: str
    segment: np.ndarray
    point: np.ndarray
    order: np.ndarray


def check_space(scene: SemanticScene, encoder: TextEncoderLike) -> None:
    space = scene.metadata.get("text_space")
    if len(scene.segments) == 0:
        raise SpaceMismatch("the scene has no segments (reconstruct it with semantics enabled)")
    if space is None:
        raise SpaceMismatch("the scene's segments have no text space (metadata['text_space'] is empty)")
    enc_space = getattr(encoder, "space_id", None)
    if enc_space is not None and enc_space != space:
        raise SpaceMismatch(f"the scene's descriptors are in the space {space!r}, the text encoder is {enc_space!r}")
    if scene.segments.descriptor.shape[1] != encoder.dim:
        raise SpaceMismatch(f"descriptor dimension {scene.segments.descriptor.shape[1]} != text dimension "
                            f"{encoder.dim}")


def segment_scores(scene: SemanticScene, text_emb: np.ndarray) -> np.ndarray:
    """text_emb (D,) or (T,D) normalised -> (S,) or (T,S) float32 cosine."""
    d = scene.segments.descriptor.astype(np.float32)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return (np.asarray(text_emb, np.float32) @ d.T).astype(np.float32)


def point_scores(scene: SemanticScene, seg_scores: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """(S,) segment scores -> (N,) float32 per point (a table lookup; ``fill`` for segment -1)."""
    lut = np.append(np.asarray(seg_scores, np.float32), np.float32(fill))
    return lut[scene.segment_id]  # -1 indexes the appended fill value


def query(scene: SemanticScene, text: str, encoder: TextEncoderLike | None = None, check: bool = True) -> QueryResult:
    """Score every segment and point of ``scene`` against ``text`` (encoder None: the scene's own,
    ``text_encoder_for``)."""
    encoder = encoder if encoder is not None else text_encoder_for(scene)
    if check:
        check_space(scene, encoder)
    emb = encoder.encode([prompt(text)])[0]
    seg = segment_scores(scene, emb)
    return QueryResult(text, seg, point_scores(scene, seg), np.argsort(-seg, kind="stable"))


def select_points(scene: SemanticScene, result: QueryResult, margin: float = 0.05,
                  min_score: float | None = None) -> np.ndarray:
    """(N,) bool: points of the segments scoring within ``margin`` of the best segment (and at
    least ``min_score`` when given): all the sofas for "sofa", not only the best one."""
    if len(result.segment) == 0:
        return np.zeros(len(scene), bool)
    cut = result.segment.max() - margin
    if min_score is not None:
        cut = max(cut, min_score)
    return np.append(result.segment >= cut, False)[scene.segment_id]


def label_scene(scene: SemanticScene, vocab: Sequence[str], threshold: float | None = None,
                encoder: TextEncoderLike | None = None, check: bool = True) -> SemanticScene:
    """Best label of ``vocab`` per segment, ``"other"`` where its cosine < ``threshold``; in place.

    threshold None: ``default_threshold(scene)``; encoder None: ``text_encoder_for(scene)``.
    Writes segments.label / segments.score and metadata["labels"] = {vocabulary, threshold}.
    """
    threshold = default_threshold(scene) if threshold is None else threshold
    encoder = encoder if encoder is not None else text_encoder_for(scene)
    vocab = [v.strip() for v in vocab if v.strip()]
    if not vocab:
        raise ValueError("label_scene: empty vocabulary")
    if check:
        check_space(scene, encoder)
    scores = segment_scores(scene, encoder.encode([prompt(v) for v in vocab]))  # (T,S)
    best = scores.argmax(0)
    score = scores[best, np.arange(scores.shape[1])]
    names = np.array(vocab + [OTHER], dtype=object)
    labels = names[np.where(score >= threshold, best, len(vocab))]
    scene.segments.label = [str(x) for x in labels]
    scene.segments.score = score.astype(np.float32)
    scene.metadata["labels"] = {"vocabulary": vocab, "threshold": float(threshold)}
    return scene


def recorded_threshold(metadata: dict) -> float | None:
    """The "other" threshold the scene's metadata records for its descriptors: the fused
    descriptor's, calibrated on the validation rooms (["models"]["descriptor"]["other_threshold"],
    ``core.bench.other_threshold``), else the image encoder's own decision threshold
    (["models"]["image_encoder"]["threshold"], where its sigmoid is 0.5); None when neither."""
    models = metadata.get("models") or {}
    desc, enc = models.get("descriptor"), models.get("image_encoder")
    if isinstance(desc, dict) and desc.get("other_threshold") is not None:
        return float(desc["other_threshold"])
    thr = enc.get("threshold") if isinstance(enc, dict) else None
    return float(thr) if thr is not None else None


def default_threshold(scene: SemanticScene) -> float:
    """``recorded_threshold(scene.metadata)``, else DEFAULT_THRESHOLD."""
    thr = recorded_threshold(scene.metadata)
    return thr if thr is not None else DEFAULT_THRESHOLD


def text_encoder_for(scene: SemanticScene, openclip: dict | None = None) -> TextEncoderLike:
    """The text encoder of the scene's space: all-MiniLM-L6-v2 for the compact space; for an
    open_clip space, ``openclip`` must give load_openclip's arguments (model_name, checkpoint, ...)."""
    space = scene.metadata.get("text_space") or SPACE_ID
    if space == SPACE_ID:
        from .text_encoder import default_encoder

        return default_encoder()
    if space.startswith("open_clip:"):
        if not openclip:
            raise SpaceMismatch(f"the scene's descriptors are in {space!r}: give that open_clip model and checkpoint")
        from .openclip_encoder import load_openclip

        return load_openclip(**openclip)[1]
    raise SpaceMismatch(f"unknown text space {space!r}")
