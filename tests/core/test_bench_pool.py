"""Pooling ``ov3r bench --json`` runs: one confusion matrix summed over the rooms of several runs."""

import json

import numpy as np
import pytest

from core.bench.pool import main, pool_runs
from core.bench.semantic_metrics import semantic_scores
from core.scenegen.taxonomy import CLASSES

N = len(CLASSES)


def _conf(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.zeros((N, N), np.int64)
    for k in range(1, 8):  # classes 1-7 present, mostly right
        c[k, k] = rng.integers(50, 500)
        c[k, rng.integers(1, 8)] += rng.integers(0, 100)
    return c


def _run(*rooms: tuple[str, int]) -> dict:
    return {"scenes": [{"scene": name, "hash": name, "acc_cm": 1.0, "_conf": _conf(seed).tolist()} for name, seed in rooms]}


def test_rooms_of_several_runs_are_scored_over_one_summed_matrix():
    pooled = pool_runs([_run(("a", 0), ("b", 1)), _run(("c", 2))])
    want = semantic_scores(_conf(0) + _conf(1) + _conf(2), CLASSES)
    assert pooled["semantic"]["miou"] == pytest.approx(want["miou"])
    assert pooled["semantic"]["fmiou"] == pytest.approx(want["fmiou"])
    assert [r["scene"] for r in pooled["scenes"]] == ["a", "b", "c"]
    assert all("_conf" not in r for r in pooled["scenes"])
    # not the mean of per-run scores: pooling is over points
    separate = np.mean([semantic_scores(_conf(0) + _conf(1), CLASSES)["miou"], semantic_scores(_conf(2), CLASSES)["miou"]])
    assert pooled["semantic"]["miou"] != pytest.approx(separate)


def test_a_room_measured_twice_counts_once_with_the_later_run():
    pooled = pool_runs([_run(("a", 0), ("b", 1)), _run(("b", 5))])
    want = semantic_scores(_conf(0) + _conf(5), CLASSES)
    assert pooled["semantic"]["miou"] == pytest.approx(want["miou"])
    assert len(pooled["scenes"]) == 2


def test_geometry_only_runs_pool_without_semantics(tmp_path, capsys):
    f = tmp_path / "geo.json"
    f.write_text(json.dumps({"scenes": [{"scene": "a", "hash": "a", "acc_cm": 2.5}]}))
    out = tmp_path / "pooled.json"
    assert main([str(f), "--json", str(out)]) == 0
    assert "semantic" not in json.loads(out.read_text())
    assert "acc_cm 2.50" in capsys.readouterr().out
