"""``python -m core.query_worker``: JSON lines in, embeddings / scores out, bad requests
answered without dying, a fatal first line when the encoder cannot load."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(lines: list[dict | str], *args: str, timeout: float = 120) -> tuple[list[dict], int]:
    text = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    res = subprocess.run([sys.executable, "-m", "core.query_worker", *args], input=text, capture_output=True, check=False,
                         text=True, cwd=REPO, timeout=timeout)
    return [json.loads(x) for x in res.stdout.splitlines()], res.returncode


def test_protocol_with_the_stand_in_encoder():
    out, code = _run([
        {"id": 1, "texts": ["sofa", "red chair"]},
        {"id": 2, "cmd": "ping"},
        {"id": 3, "texts": ["  "]},
        "this is not json",
        {"id": 5, "texts": "sofa"},
        {"id": 6, "texts": ["sofa"], "descriptors": [[1.0] * 384, [-1.0] * 384]},
        {"id": 7, "texts": ["sofa"], "prompt": True},
    ], "--encoder", "core.query_worker:HashEncoder")
    assert code == 0
    assert out[0] == {"ready": True, "model": "hash-words", "dim": 384}
    emb = np.asarray(out[1]["embeddings"])
    assert out[1]["id"] == 1 and emb.shape == (2, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert out[2] == {"id": 2, "ok": True}
    assert out[3]["id"] == 3 and "empty" in out[3]["error"]
    assert out[4]["id"] is None and "bad request" in out[4]["error"]
    assert out[5]["id"] == 5 and "list of strings" in out[5]["error"]
    scores = np.asarray(out[6]["scores"])
    assert scores.shape == (1, 2) and scores[0, 0] == pytest.approx(-scores[0, 1], abs=1e-5)
    assert not np.allclose(out[7]["embeddings"], emb[:1])  # the prompt changes the text


def test_missing_weights_folder_is_fatal(tmp_path):
    out, code = _run([], "--encoder", "core.query_worker:HashEncoder", "--weights", str(tmp_path / "nope"))
    assert code == 2 and out[0]["fatal"] and "weights folder not found" in out[0]["error"]


def test_real_encoder_round_trip_is_fast():
    """The offline all-MiniLM-L6-v2: loads once, then a query answers in well under 500 ms."""
    proc = subprocess.Popen([sys.executable, "-m", "core.query_worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO, env={**__import__("os").environ,
                                                                               "HF_HUB_OFFLINE": "1"})
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] and ready["dim"] == 384
        times = []
        for i, text in enumerate(["sofa", "a wooden chair", "the lamp near the window", "sofa"]):
            t0 = time.perf_counter()
            proc.stdin.write(json.dumps({"id": i, "texts": [text], "prompt": True}) + "\n")
            proc.stdin.flush()
            ans = json.loads(proc.stdout.readline())
            times.append(time.perf_counter() - t0)
            assert ans["id"] == i and len(ans["embeddings"][0]) == 384
        assert np.median(times) < 0.5
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
