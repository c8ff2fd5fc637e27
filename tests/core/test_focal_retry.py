"""The second mapping with the lines' focal length: when it runs, and which model is kept."""

from __future__ import annotations

import pytest

import core.geometry.sfm.focal_retry as fr
from core.jobs import JobCancelled, JobContext, JobError


class Model:
    def __init__(self, agreed: bool, tag: str) -> None:
        self.mapping = {"agreed": agreed}
        self.tag = tag


def fake_run_sfm(first_agreed: bool, retry: object):
    calls = []

    def run(images, ctx, **kw):
        calls.append(kw)
        if len(calls) == 1:
            return Model(first_agreed, "first")
        if isinstance(retry, Exception):
            raise retry
        return Model(retry, "retry")

    return run, calls


@pytest.mark.parametrize("first_agreed, focal, retry, kept, n_calls", [
    (True, 460.0, True, "first", 1),  # the solves agree: one mapping
    (False, None, True, "first", 1),  # no lines to retry with
    (False, 460.0, True, "retry", 2),  # the lines' mapping agrees: kept
    (False, 460.0, False, "first", 2),  # it does not: the first kept
    (False, 460.0, JobError("nothing registered"), "first", 2),  # it fails: the first kept
])
def test_retry_decision(monkeypatch, first_agreed, focal, retry, kept, n_calls):
    run, calls = fake_run_sfm(first_agreed, retry)
    monkeypatch.setattr(fr, "run_sfm", run)
    model, record = fr.run_sfm_with_focal_retry([], JobContext(), focal, max_features=1024)
    assert model.tag == kept and len(calls) == n_calls
    assert record["retried"] == (n_calls == 2)
    assert record["kept"] == ("lines" if kept == "retry" else "self-calibrated")
    if n_calls == 2:  # the second mapping holds the lines' focal length fixed, all else as the first
        assert calls[1] == {"max_features": 1024, "focal_px": focal, "focal_mode": "fixed"}


def test_known_intrinsics_never_retry(monkeypatch):
    run, calls = fake_run_sfm(False, True)
    monkeypatch.setattr(fr, "run_sfm", run)
    model, record = fr.run_sfm_with_focal_retry([], JobContext(), 460.0, intrinsics=object())
    assert model.tag == "first" and len(calls) == 1 and not record["retried"]


def test_cancel_during_the_retry_is_not_swallowed(monkeypatch):
    ctx = JobContext()
    run, _ = fake_run_sfm(False, JobError("cancelled"))
    monkeypatch.setattr(fr, "run_sfm", run)
    ctx.cancel_event.set()
    with pytest.raises(JobCancelled):
        fr.run_sfm_with_focal_retry([], ctx, 460.0)
