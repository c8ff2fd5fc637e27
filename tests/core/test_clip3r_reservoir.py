"""The reservoir scene buffer: bounded, seeded, uniform over what it was offered, resumable."""

import json

import numpy as np
import pytest

from core.models.clip3r import ReservoirBuffer


def _fill(seed, n=200, capacity=10):
    buf = ReservoirBuffer(capacity, seed=seed)
    log = [buf.offer(i, item=f"frame{i}") for i in range(n)]
    return buf, log


def test_fills_then_stays_bounded_and_consistent():
    buf, log = _fill(0)
    assert len(buf) == 10 and buf.n_seen == 200
    assert all(kept and ev is None for kept, ev in log[:10])  # the first frames always enter
    for i in buf.ids:
        assert buf.get(i) == f"frame{i}" and i in buf
    evicted = [ev for _, ev in log if ev is not None]
    assert not set(evicted) & set(buf.ids)  # an evicted frame never comes back
    assert sum(kept for kept, _ in log) - len(evicted) == len(buf)


def test_deterministic_for_a_seed():
    a, la = _fill(7)
    b, lb = _fill(7)
    c, _ = _fill(8)
    assert a.ids == b.ids and la == lb
    assert a.ids != c.ids


def test_uniform_inclusion():
    # each of n offered frames ends up in the buffer with probability capacity / n
    counts = np.zeros(40)
    for seed in range(400):
        buf, _ = _fill(seed, n=40, capacity=8)
        counts[buf.ids] += 1
    p = counts / 400
    assert abs(p.mean() - 0.2) < 1e-9  # exactly 8 of 40 each time
    assert p[:8].mean() < 0.3 and p[-8:].mean() > 0.1  # old frames are not kept forever, new ones enter
    assert np.abs(p - 0.2).max() < 0.1


def test_state_round_trip_resumes_identically():
    a, _ = _fill(3, n=50)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-serialisable
    b = ReservoirBuffer(1)
    b.load_state_dict(state, items={i: a.get(i) for i in a.ids})
    for i in range(50, 120):
        assert a.offer(i) == b.offer(i)
    assert a.ids == b.ids


def test_unbounded_and_duplicates():
    buf = ReservoirBuffer(0)
    for i in range(30):
        assert buf.offer(i) == (True, None)
    assert len(buf) == 30
    with pytest.raises(ValueError, match="already"):
        buf.offer(3)
