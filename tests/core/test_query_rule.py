"""The query selection rules compared on the validation rooms (core.bench.query_rule): a threshold,
and a threshold with a query weighed against a vocabulary."""

import numpy as np

from ov3r.core.bench.other_threshold import RoomSegmentsGT
from ov3r.core.bench.query_rule import NO_RIVAL, best_setting, evaluate_grid, rival_scores, room_queries
from ov3r.core.semantics.query import parse_vocabulary


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_vocabulary_parsing_strips_and_drops_repeats():
    assert parse_vocabulary(" sofa, chair,, Sofa ,lamp ") == ["sofa", "chair", "lamp"]
    from ov3r.core.semantics.query import DEFAULT_VOCABULARY

    assert "sofa" in parse_vocabulary(DEFAULT_VOCABULARY) and "chair" in parse_vocabulary(DEFAULT_VOCABULARY)


def test_synonyms_are_not_rivals():
    q = _unit([1.0, 0.1, 0.0])
    vocab = _unit([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # a near-synonym of the query, an unrelated word
    desc = _unit([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    # cut 0.9: the near-synonym is no rival, so each segment's rival is the unrelated word
    np.testing.assert_allclose(rival_scores(desc, q, vocab, 0.9), [0.0, 1.0], atol=1e-6)
    # cut 0.999: only the query's own word would be excluded; the near-synonym competes
    np.testing.assert_allclose(rival_scores(desc, q, vocab, 0.999), [1.0, 1.0], atol=1e-6)
    assert (rival_scores(desc, vocab[0], vocab[:1], 0.999) == NO_RIVAL).all()  # the word itself: no rival
    assert (rival_scores(desc, q, np.zeros((0, 3)), 0.9) == NO_RIVAL).all()


def test_a_segment_that_fits_a_rival_better_is_held_back():
    q = _unit([1.0, 0.0, 0.0])  # "chair"
    vocab = _unit([[0.0, 1.0, 0.0]])  # "bookcase"
    desc = _unit([[1.0, 0.2, 0.0],   # a chair: fits the query better
                  [0.6, 1.0, 0.0],   # a bookcase that looks a little like a chair
                  [0.0, 0.0, 1.0]])  # neither
    score = desc @ q
    rival = rival_scores(desc, q, vocab, 0.9)
    np.testing.assert_allclose(rival, desc @ vocab[0], atol=1e-6)
    assert (score >= 0.5).tolist() == [True, True, False]  # the threshold alone takes the bookcase
    assert ((score >= 0.5) & (score >= rival - 0.05)).tolist() == [True, False, False]
    assert ((score >= 0.5) & (score >= rival - 1.0)).tolist() == [True, True, False]  # a wide margin: no contrast


class _Words:
    """A text encoder of fixed directions per word (prompts: the last word), for the grid test."""

    dirs = {"chair": [1, 0, 0, 0], "sofa": [0, 1, 0, 0], "couch": [0, 0.95, 0.31, 0], "bookcase": [0, 0, 0, 1], "bookshelf": [0, 0, 0.2, 1],
            "lamp": [0.5, 0.5, 0.5, 0.5]}

    def encode(self, texts):
        return _unit([self.dirs[t.split()[-1]] for t in texts])


def test_the_grid_finds_the_contrast_that_removes_a_lookalike():
    from ov3r.core.scenegen.taxonomy import CLASSES

    T = len(CLASSES) - 1
    chair, sofa, bookcase = (CLASSES.index(c) - 1 for c in ("chair", "sofa", "bookcase"))
    # segments: chair, sofa, bookcase that scores 0.55 for "chair" (but 0.83 for "bookcase")
    desc = _unit([[1, 0.1, 0, 0], [0.05, 1, 0.1, 0], [0.55, 0, 0, 0.83]])
    counts = np.zeros((3, T))
    counts[0, chair], counts[1, sofa], counts[2, bookcase] = 400, 600, 500
    room = RoomSegmentsGT(np.zeros((T, 3)), np.array([chair, sofa, bookcase]), counts.sum(1), "mean", counts,
                          counts.sum(0), desc)
    rq = room_queries(room, _Words(), ["chair", "sofa", "bookcase", "lamp"], np.array([0.9, 0.999]))
    assert rq.names == ["chair", "sofa", "couch", "bookcase", "bookshelf"]  # "couch": the synonym query of the sofa
    grid = evaluate_grid([rq], np.array([0.5, 0.6]), np.array([np.inf, 0.05]))
    # the threshold rule at 0.5 takes the bookcase for "chair": precision 400 / 900
    assert np.isclose(grid["precision"][0, 0, 0], (400 / 900 + 4) / 5)
    assert np.isclose(grid["precision"][0, 1, 0], 1.0) and np.isclose(grid["recall"][0, 1, 0], 1.0)
    best = best_setting(grid, contrast=True)
    assert best["margin"] == 0.05 and best["f1"] == 1.0 and best["accepted"] == 1.0
    thr = best_setting(grid, contrast=False)
    assert thr["margin"] is None and thr["threshold"] == 0.6 and thr["f1"] == 1.0
