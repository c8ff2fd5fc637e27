"""Mapping once more with the focal length of the room's lines when the seeded solves never agreed.

A self-calibrated focal length that settles in the wrong minimum bends the whole path, and the seeded
mapping runs then scatter without two agreeing (``model_consensus``). The vanishing points' focal length
(``vanishing_focal``) is within 1-2 % of the truth on most walks, so the video is mapped again with it held
fixed; that second mapping is kept only when its own runs agree, since the lines can be wrong too.
"""

from __future__ import annotations

import time

import numpy as np

from ...jobs import JobContext, JobError
from .colmap_sfm import SparseModel, run_sfm


def run_sfm_with_focal_retry(images: list[np.ndarray], ctx: JobContext, focal_px: float | None,
                             **kwargs) -> tuple[SparseModel, dict]:
    """``run_sfm(images, ctx, **kwargs)`` (self-calibrated), then, when its solves never agreed and ``focal_px``
    (the lines' focal length, pixels) is known, ``run_sfm`` with ``focal_px`` fixed, kept when its solves agree.

    Returns (the model kept, a record {"retried": bool, "kept": "self-calibrated" | "lines", "retry_agreed": bool
    or None, and after a retry "retry_focal_px", "retry_seconds"})."""
    first = run_sfm(images, ctx, **kwargs)
    record = {"retried": False, "kept": "self-calibrated", "retry_agreed": None}
    if focal_px is None or first.mapping.get("agreed", True) or kwargs.get("intrinsics") is not None:
        return first, record
    t0 = time.perf_counter()
    ctx.progress("sfm: again, with the focal length of the room's lines", 0, 1)
    try:
        retry = run_sfm(images, ctx, **{**kwargs, "focal_px": focal_px, "focal_mode": "fixed"})
    except JobError:  # cancelled re-raises from ctx below; a retry that maps nothing keeps the first model
        ctx.check_cancel()
        retry = None
    agreed = retry is not None and bool(retry.mapping.get("agreed"))
    record.update(retried=True, retry_agreed=agreed, retry_focal_px=round(float(focal_px), 2),
                  retry_seconds=round(time.perf_counter() - t0, 2))
    if agreed:
        record["kept"] = "lines"
        return retry, record
    return first, record
