"""Which keyframe pairs SIFT matching compares: near neighbours in video order, and links far ahead.

COLMAP's sequential pairing does one or the other: ``overlap`` N gives the next N images, and with
``quadratic_overlap`` (pycolmap 4) the images 1, 2, 4, ..., 2^(N-1) ahead *instead* (only those), so an
"overlap of 20" with it compares each keyframe with 5 or 6 others in a 50-keyframe video. The list here is
the union, handed to COLMAP as imported pairs.
"""

from __future__ import annotations

from pathlib import Path


def sequential_pairs(n: int, overlap: int, quadratic: bool) -> list[tuple[int, int]]:
    """Sorted (i, j), i < j < n: every j with j - i <= ``overlap``, and with ``quadratic`` every j - i a power
    of two as well (the far links that close a loop or bridge a stretch the near ones lost)."""
    if overlap < 1:
        raise ValueError(f"overlap must be at least 1, got {overlap}")
    pairs = {(i, j) for i in range(n) for j in range(i + 1, min(n, i + overlap + 1))}
    if quadratic:
        step = 1
        while step < n:
            pairs |= {(i, i + step) for i in range(n - step)}
            step *= 2
    return sorted(pairs)


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> Path:
    """Image-name pairs as COLMAP's pair list ("name_a name_b" per line); returns ``path``."""
    path.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    return path
