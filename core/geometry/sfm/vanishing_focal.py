"""The focal length from a room's vanishing points, before any SfM.

Self-calibration from matches alone has two minima on many room walks (a wrong focal length fits a
slow walk about as well as the right one), and which one the bundle adjustment finds depends on where it
starts. A room gives a better start: its walls, floor edges, door frames and furniture run along three
orthogonal directions, and two orthogonal directions' vanishing points v1, v2 fix the focal length,
``f^2 = -(v1 - c) . (v2 - c)`` (square pixels, principal point c at the image centre).

Per keyframe (OpenCV's LSD segments, :func:`core.scene.manhattan.line_segments`), a RANSAC over
Manhattan frames: two segment pairs give two vanishing points, orthogonality gives the focal length and
the third direction, and the frame is scored by the length of the segments pointing at any of its three
vanishing points; the best frame's two vanishing points are refit to their segments. The video's focal
length is the median of the keyframes whose frame explains enough of their lines, kept only where they
agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...scene.manhattan import line_segments


@dataclass
class VanishingFocalSettings:
    max_images: int = 30  # keyframes looked at, evenly spread
    min_length: float = 0.05  # segments at least this x the long side
    max_segments: int = 150  # the longest ones vote
    hypotheses: int = 1500  # RANSAC draws (4 segments each) per keyframe
    inlier_deg: float = 1.5  # a segment points at a vanishing point within this angle
    min_explained: float = 0.35  # a keyframe counts when its frame explains this share of its line length
    min_inliers: int = 4  # segments per vanishing point that the focal length rests on
    max_vp_distance: float = 8.0  # long sides from the centre: farther vanishing points fix no focal length
    focal_range: tuple[float, float] = (0.35, 2.5)  # plausible focal lengths, x the long side
    min_images: int = 5  # keyframes that must give an estimate
    max_spread: float = 0.08  # their median absolute deviation, relative to the median, at most
    seed: int = 0


def _homogeneous_lines(seg: np.ndarray, centre: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments (L,4) px -> unit-normal homogeneous lines (L,3), midpoints (L,2) and unit directions (L,2),
    in coordinates centred on ``centre`` and divided by ``scale``."""
    a = (seg[:, :2] + 0.5 - centre) / scale
    b = (seg[:, 2:] + 0.5 - centre) / scale
    ones = np.ones((len(seg), 1))
    lines = np.cross(np.hstack([a, ones]), np.hstack([b, ones]))
    lines /= np.maximum(np.linalg.norm(lines[:, :2], axis=1, keepdims=True), 1e-12)
    d = b - a
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return lines, (a + b) / 2, d


def _points_at(vps: np.ndarray, mid: np.ndarray, direction: np.ndarray, tol: float) -> np.ndarray:
    """(V,L) bool: segment l (midpoint, unit direction) points at homogeneous vanishing point v (V,3)
    within sin(angle) ``tol``; infinite vanishing points (v3 = 0) are directions."""
    u = vps[:, None, :2] - mid[None] * vps[:, None, 2:3]  # (V,L,2) towards v, homogeneous-safe
    cross = np.abs(direction[None, :, 0] * u[..., 1] - direction[None, :, 1] * u[..., 0])
    return cross < tol * np.maximum(np.linalg.norm(u, axis=2), 1e-12)


def _focal_sq(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """f^2 (scaled units) making homogeneous vanishing points v1, v2 (...,3) orthogonal directions."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -(v1[..., 0] * v2[..., 0] + v1[..., 1] * v2[..., 1]) / (v1[..., 2] * v2[..., 2])


def _refit(lines: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The homogeneous point (3,) nearest to all ``lines`` (K,3) in the weighted least-squares sense."""
    m = (lines * weights[:, None]).T @ lines
    return np.linalg.eigh(m)[1][:, 0]


def image_focal(image: np.ndarray, st: VanishingFocalSettings | None = None,
                rng: np.random.Generator | None = None) -> float | None:
    """One keyframe's focal length in pixels from its Manhattan frame, or None when its lines do not fix one.

    image: (H,W,3) uint8 RGB; the principal point is taken at the image centre."""
    st = st or VanishingFocalSettings()
    rng = rng or np.random.default_rng(st.seed)
    h, w = image.shape[:2]
    scale = float(max(h, w))
    seg, length = line_segments(image, st.min_length)
    if len(seg) < 2 * st.min_inliers:  # two vanishing points, min_inliers segments each
        return None
    order = np.argsort(-length)[:st.max_segments]
    seg, length = seg[order], length[order]
    lines, mid, direction = _homogeneous_lines(seg, np.array([w / 2, h / 2]), scale)
    tol = np.sin(np.radians(st.inlier_deg))
    n = len(seg)
    pick = rng.choice(n, size=(st.hypotheses, 4), p=length / length.sum())
    pick = pick[(pick[:, 0] != pick[:, 1]) & (pick[:, 2] != pick[:, 3])]
    v1 = np.cross(lines[pick[:, 0]], lines[pick[:, 1]])
    v2 = np.cross(lines[pick[:, 2]], lines[pick[:, 3]])
    f2 = _focal_sq(v1, v2)
    lo, hi = st.focal_range
    ok = np.isfinite(f2) & (f2 > lo ** 2) & (f2 < hi ** 2)
    v1, v2, f2 = v1[ok], v2[ok], f2[ok]
    if not len(f2):
        return None
    f = np.sqrt(f2)
    # the third direction: orthogonal to both in the camera frame, back into the image
    d1 = np.stack([v1[:, 0] / f, v1[:, 1] / f, v1[:, 2]], 1)
    d2 = np.stack([v2[:, 0] / f, v2[:, 1] / f, v2[:, 2]], 1)
    d3 = np.cross(d1, d2)
    v3 = np.stack([d3[:, 0] * f, d3[:, 1] * f, d3[:, 2]], 1)
    best, best_score, best_sets = None, -1.0, None
    for c in range(0, len(f), 256):
        vps = np.stack([v1[c:c + 256], v2[c:c + 256], v3[c:c + 256]], 1)  # (C,3,3)
        hit = _points_at(vps.reshape(-1, 3), mid, direction, tol).reshape(len(vps), 3, n)
        score = hit.any(1) @ length
        k = int(np.argmax(score))
        if score[k] > best_score:
            best, best_score, best_sets = c + k, float(score[k]), hit[k]
    if best_score < st.min_explained * length.sum():
        return None
    # refit the two vanishing points the focal length came from to their own segments (a segment near
    # both counts for neither)
    only = best_sets & (best_sets.sum(0) == 1)
    if only[0].sum() < st.min_inliers or only[1].sum() < st.min_inliers:
        return None
    r1, r2 = _refit(lines[only[0]], length[only[0]]), _refit(lines[only[1]], length[only[1]])
    for v in (r1, r2):
        if abs(v[2]) < 1e-12 or np.linalg.norm(v[:2] / v[2]) > st.max_vp_distance:
            return None
    f2r = float(_focal_sq(r1, r2))
    if not (lo ** 2 < f2r < hi ** 2):
        return None
    return float(np.sqrt(f2r) * scale)


def vanishing_focal(images: Sequence[np.ndarray], st: VanishingFocalSettings | None = None) -> tuple[float | None, dict]:
    """The video's focal length in pixels of these images (N x (H,W,3) uint8 RGB, one size) from their
    vanishing points, or None where too few keyframes give one or they disagree; and a record of why
    (``{"images", "estimates", "focal", "spread", "width"}``: focal lengths in pixels of images that wide)."""
    st = st or VanishingFocalSettings()
    rng = np.random.default_rng(st.seed)
    idx = np.unique(np.linspace(0, len(images) - 1, min(len(images), st.max_images)).round().astype(int)) \
        if len(images) else np.zeros(0, int)
    est = [f for f in (image_focal(images[i], st, rng) for i in idx) if f is not None]
    width = int(images[0].shape[1]) if len(images) else 0
    record: dict = {"images": int(len(idx)), "estimates": len(est), "focal": None, "spread": None, "width": width}
    if len(est) < st.min_images:
        record["reason"] = f"{len(est)} of {len(idx)} keyframes fix a focal length (need {st.min_images})"
        return None, record
    med = float(np.median(est))
    spread = float(np.median(np.abs(np.array(est) - med)) / med)
    record.update(spread=round(spread, 4), median=round(med, 2))
    if spread > st.max_spread:
        record["reason"] = f"the keyframes disagree (spread {spread:.2f})"
        return None, record
    record["focal"] = round(med, 2)
    return med, record
