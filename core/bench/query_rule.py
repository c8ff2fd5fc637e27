"""Choose the add-on's query selection rule on the validation rooms (never the test suite).

An artist types a word; the add-on selects segments. Two rules are compared, each over a grid:

- ``threshold``: every segment whose cosine with the query is >= t (the rule until now);
- ``contrast``: the same, and the query must not lose to a rival word of the add-on's default
  vocabulary by more than a margin m: ``score >= rival - m``, where ``rival`` is the segment's best
  cosine over the vocabulary's words whose text embedding is less than ``synonym_cos`` from the
  query's (for "couch" the vocabulary's "sofa" is the same thing, not a rival). Meant to drop
  lookalikes (a bookcase scoring 0.53 for "chair" and 0.65 for "bookcase").

Queries: in each room every present class with >= ``min_points`` points, by its own name, and by
its synonym where ``eval_scene.SYNONYMS`` has one ("couch" for a sofa). Each query's precision and
recall are on the points (GT class of the points inside the selected segments); the score of a
setting is the mean F1 over the queries, and the share of queries with precision and recall both
>= 0.5 (the issue's acceptance bar) is reported beside it.

``python -m core.bench.query_rule [--rooms 8] [--cache DIR]``: the best setting of each rule on the
validation rooms (docs/experiments/history.md, "Query selection rules": neither is shipped; the add-on selects at the
scene's recorded "other" threshold, ``core.bench.other_threshold``). ``--scenes suite --at T M S``:
reports one setting on the test suite, for the record.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..semantics.query import DEFAULT_VOCABULARY, parse_vocabulary
from .other_threshold import RoomSegmentsGT, room_set_segments

__all__ = ["NO_RIVAL", "RoomQueries", "best_setting", "evaluate_grid", "rival_scores", "room_queries"]

THRESHOLDS = np.round(np.arange(0.0, 0.9001, 0.01), 2)
MARGINS = np.array([np.inf, 0.15, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01, 0.0])
SYNONYM_COS = np.array([0.8, 0.85, 0.9, 0.999])
NO_RIVAL = -2.0  # below any cosine: a segment with no rival word is never held back


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _rivals(seg_vocab: np.ndarray, text_vocab: np.ndarray, synonym_cos: float) -> np.ndarray:
    """(Q,S) float32 best rival cosine per query and segment, NO_RIVAL where a query has none.
    seg_vocab (S,V) segment-word cosines; text_vocab (Q,V) query-word text cosines."""
    rival = text_vocab < synonym_cos  # (Q,V)
    s = np.where(rival[:, None, :], seg_vocab[None, :, :], NO_RIVAL)  # (Q,S,V)
    return (s.max(2) if s.shape[2] else np.full(s.shape[:2], NO_RIVAL)).astype(np.float32)


def rival_scores(descriptors: np.ndarray, query_emb: np.ndarray, vocab_emb: np.ndarray,
                 synonym_cos: float) -> np.ndarray:
    """(S,) float32: each segment's best cosine over the query's rival words (NO_RIVAL when none).

    descriptors (S,D); query_emb (D,) and vocab_emb (V,D) text embeddings of the prompted words;
    rivals: the words whose text cosine with the query is < ``synonym_cos``."""
    v = _unit(np.atleast_2d(vocab_emb)).reshape(-1, np.shape(query_emb)[-1])
    seg_vocab = _unit(np.atleast_2d(descriptors)) @ v.T
    return _rivals(seg_vocab, (v @ _unit(query_emb))[None], synonym_cos)[0]


@dataclass
class RoomQueries:
    """One room's queries: ``score (Q,S)`` cosine of each query with each segment, ``rival (C,Q,S)``
    the best rival-word cosine per synonym cut in SYNONYM_COS, ``tp (Q,S)`` points of the queried
    class in each segment, ``weight (S,)`` points per segment, ``total (Q,)`` points of the class in
    the room, ``names`` the query texts."""

    score: np.ndarray
    rival: np.ndarray
    tp: np.ndarray
    weight: np.ndarray
    total: np.ndarray
    names: list[str]
    synonym_cos: np.ndarray


def room_queries(room: RoomSegmentsGT, encoder, vocabulary: Sequence[str], synonym_cos: np.ndarray = SYNONYM_COS,
                 min_points: int = 200) -> RoomQueries:
    """The queries of one room (see the module docstring) from its segments' descriptors."""
    from ..bench.eval_scene import SYNONYMS
    from ..semantics.text_encoder import prompt
    from ..scenegen.taxonomy import CLASSES

    names, cls = [], []
    for c in np.flatnonzero(room.totals >= min_points):
        name = CLASSES[c + 1]
        names.append(name)
        cls.append(c)
        if name in SYNONYMS:
            names.append(SYNONYMS[name])
            cls.append(c)
    q_emb = _unit(encoder.encode([prompt(n) for n in names]))
    v_emb = _unit(encoder.encode([prompt(v) for v in vocabulary]))
    d = _unit(room.descriptors)
    seg_vocab, text_vocab = d @ v_emb.T, q_emb @ v_emb.T  # once per room, for every cut
    rival = np.stack([_rivals(seg_vocab, text_vocab, s) for s in synonym_cos])
    cls = np.array(cls, int)
    return RoomQueries((q_emb @ d.T).astype(np.float32), rival, room.counts[:, cls].T, room.weight,
                       room.totals[cls], names, np.asarray(synonym_cos))


def evaluate_grid(rooms: Sequence[RoomQueries], thresholds: np.ndarray = THRESHOLDS,
                  margins: np.ndarray = MARGINS) -> dict[str, np.ndarray]:
    """Mean precision, recall, F1 and the share of queries with both >= 0.5, each (C, M, T):
    synonym cut x margin x threshold (margin inf: the threshold rule)."""
    C, M, T = len(rooms[0].synonym_cos), len(margins), len(thresholds)
    sums = {k: np.zeros((C, M, T)) for k in ("precision", "recall", "f1", "accepted")}
    n = 0
    for r in rooms:
        for q in range(len(r.names)):
            s = r.score[q]  # (S,)
            above = s[None, :] >= thresholds[:, None]  # (T,S)
            keep = s[None, None, :] >= r.rival[:, q, None, :] - margins[None, :, None]  # (C,M,S)
            sel = keep[:, :, None, :] & above[None, None, :, :]  # (C,M,T,S)
            tp = sel @ r.tp[q]
            chosen = sel @ r.weight
            p = np.where(chosen > 0, tp / np.maximum(chosen, 1), 0.0)
            rec = tp / max(r.total[q], 1)
            sums["precision"] += p
            sums["recall"] += rec
            sums["f1"] += np.where(p + rec > 0, 2 * p * rec / np.maximum(p + rec, 1e-12), 0.0)
            sums["accepted"] += (p >= 0.5) & (rec >= 0.5)
            n += 1
    out = {k: v / max(n, 1) for k, v in sums.items()}
    out.update(thresholds=np.asarray(thresholds), margins=np.asarray(margins), synonym_cos=rooms[0].synonym_cos,
               queries=np.array(n))
    return out


def best_setting(grid: dict[str, np.ndarray], contrast: bool) -> dict:
    """The grid cell with the highest mean F1: over every margin (``contrast``) or at margin inf."""
    f1 = grid["f1"].copy()
    rule_margin = np.isinf(grid["margins"])
    f1[:, rule_margin if contrast else ~rule_margin, :] = -1
    if not contrast:
        f1[1:] = -1  # the synonym cut does not matter without rivals
    c, m, t = np.unravel_index(int(np.argmax(f1)), f1.shape)
    margin = float(grid["margins"][m])
    return {"threshold": float(grid["thresholds"][t]), "margin": margin if np.isfinite(margin) else None,
            "synonym_cos": float(grid["synonym_cos"][c]) if contrast else None,
            **{k: float(grid[k][c, m, t]) for k in ("precision", "recall", "f1", "accepted")},
            "queries": int(grid["queries"])}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.query_rule", description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=8, help="validation rooms (rendered on first use)")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--scenes", choices=["validation", "heldout", "suite"], default="validation",
                   help="heldout: rooms of the validation library's furniture (suite.heldout_configs)")
    p.add_argument("--at", type=float, nargs=3, default=None, metavar=("THRESHOLD", "MARGIN", "SYNONYM_COS"),
                   help="report this contrast setting (and the threshold rule at THRESHOLD) only")
    p.add_argument("--cache", type=Path, default=None, help="keep each room's segments here (re-runs skip the stage)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if a.scenes == "suite" and a.at is None:
        p.error("on the test suite only an --at setting is reported (choose it on the validation rooms)")
    from ..semantics.text_encoder import default_encoder

    enc = default_encoder()
    segs = room_set_segments(a.scenes, a.rooms, a.frames, a.cache)
    if a.at is not None:
        t, m, s = a.at
        rooms = [room_queries(r, enc, parse_vocabulary(DEFAULT_VOCABULARY), np.array([s])) for r in segs]
        g = evaluate_grid(rooms, np.array([t]), np.array([m, np.inf]))
        for j, rule in enumerate(("contrast", "threshold")):
            print(json.dumps({"rule": rule, "threshold": t, "margin": [m, None][j], "synonym_cos": [s, None][j],
                              **{k: float(g[k][0, j, 0]) for k in ("precision", "recall", "f1", "accepted")},
                              "queries": int(g["queries"])}))
        return 0
    grid = evaluate_grid([room_queries(r, enc, parse_vocabulary(DEFAULT_VOCABULARY)) for r in segs])
    res = {"threshold_rule": best_setting(grid, False), "contrast_rule": best_setting(grid, True),
           "rooms": len(segs), "frames": a.frames, "vocabulary": parse_vocabulary(DEFAULT_VOCABULARY)}
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps({**res, "grid": {k: v.tolist() for k, v in grid.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
