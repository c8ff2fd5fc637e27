"""The project's cache folder: renders, training data, runs and fetched weights.

``$OV3R_CACHE`` when set (tests and CI point it at a scratch folder), else ``~/.cache/ov3r``.
Everything under it can be rebuilt by a command; nothing the main job needs lives only here.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """``$OV3R_CACHE/<parts...>`` (``~/.cache/ov3r/<parts...>`` when unset or empty); not created."""
    base = os.environ.get("OV3R_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "ov3r").joinpath(*parts)
