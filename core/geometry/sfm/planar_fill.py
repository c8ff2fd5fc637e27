"""Planar hole filling of one view's depth map.

Plain walls, floors, ceilings, doors and cabinet fronts give the plane sweep nothing to match, so
their depth is missing, yet the few pixels of them that do pass the checks (a light change, a
corner, dust of texture) lie on one plane. This fills such surfaces the way piecewise-planar MVS
does: the image is cut into colour-homogeneous regions along its edges (OpenCV Canny + connected
components); a region whose measured depths, inside it and on the edges around it, fit one plane
that they span (RANSAC, not a line of points) gets the plane's depth on its missing pixels. A blank
wall has no measured depth inside, but its outline (the skirting, the corners, a door frame) does.
The caller cross-checks the filled depths between views before keeping them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .depth_filter import pixel_rays


@dataclass
class PlanarFillSettings:
    """The knobs of :func:`fill_planar` (chosen on the development walks, docs/experiments/geometry.md)."""

    canny_low: int = 10  # gradient thresholds on the 0-255 grey image: faint edges still split regions
    canny_high: int = 30
    min_region_frac: float = 0.004  # of the image: smaller regions are left alone
    border_px: int = 4  # the measured pixels this far outside a region support it too (its outline)
    min_support: int = 30  # measured pixels a region needs
    inlier_rel: float = 0.01  # RANSAC inlier: distance to the plane / depth
    min_inlier_ratio: float = 0.8  # the rest: an occluder's outline in front of the surface, mismatches
    min_spread: float = 0.15  # 2nd / 1st singular value of the inliers: a line of points spans no plane
    min_cos: float = 0.2  # |cos| between a pixel's ray and the plane normal: no grazing fills
    iterations: int = 64
    min_box_support: int = 10  # measured pixels in or around a region that must lie on the room's box ...
    box_rel: float = 0.03  # ... within this fraction of their depth ...
    min_box_ratio: float = 0.6  # ... as this fraction of its measured pixels
    min_veto: int = 5  # pixels of the veto depth that can forbid a region the box
    # ... counted this many px inside the region only: the sweep's window carries an occluder's depth a few
    # pixels past its outline into the surface behind it, which vetoed most blank walls (0: every pixel)
    veto_inset_px: int = 4
    seed: int = 0


def homogeneous_regions(image: np.ndarray, low: int, high: int) -> np.ndarray:
    """(H,W) int32 region ids of an (H,W,3) uint8 RGB image; 0 marks edge pixels (no region)."""
    gray = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (3, 3), 0)
    edges = cv2.dilate(cv2.Canny(gray, low, high), np.ones((3, 3), np.uint8))
    _, labels = cv2.connectedComponents((edges == 0).astype(np.uint8), connectivity=4)
    labels[edges > 0] = 0
    return labels.astype(np.int32)


def fit_plane(points: np.ndarray, rel_tol: float, iterations: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, float, np.ndarray] | None:
    """RANSAC plane n.x = d through (N,3) camera-frame points, then least squares on the inliers.

    A point is an inlier when its distance to the plane is below ``rel_tol`` x its depth (z).
    Returns (unit normal (3,), d, inlier mask (N,)) or None when no sample spans a plane.
    """
    n = len(points)
    tol = rel_tol * points[:, 2]
    best = None
    best_count = -1
    for _ in range(iterations):
        p = points[rng.choice(n, 3, replace=False)]
        nrm = np.cross(p[1] - p[0], p[2] - p[0])
        norm = np.linalg.norm(nrm)
        if norm < 1e-12:
            continue
        nrm /= norm
        inl = np.abs(points @ nrm - nrm @ p[0]) < tol
        if inl.sum() > best_count:
            best, best_count = inl, int(inl.sum())
    if best is None or best_count < 3:
        return None
    q = points[best]
    c = q.mean(0)
    nrm = np.linalg.svd(q - c, full_matrices=False)[2][-1]
    inl = np.abs(points @ nrm - nrm @ c) < tol
    return nrm, float(nrm @ c), inl


def _regions(labels: np.ndarray, min_area: float, border: int):
    """Yield (rows slice, cols slice, region (h,w) bool, neighbourhood (h,w) bool) per region of at least
    ``min_area`` pixels: the region's bounding box grown by ``border``, the region in it, and the region
    grown by ``border`` pixels (its outline)."""
    h, w = labels.shape
    kernel = np.ones((2 * border + 1, 2 * border + 1), np.uint8)
    ids, areas = np.unique(labels, return_counts=True)
    for lab in ids[(ids > 0) & (areas >= min_area)]:
        ys, xs = np.nonzero(labels == lab)
        rows = slice(max(ys.min() - border, 0), min(ys.max() + border + 1, h))
        cols = slice(max(xs.min() - border, 0), min(xs.max() + border + 1, w))
        region = labels[rows, cols] == lab
        yield rows, cols, region, cv2.dilate(region.astype(np.uint8), kernel).astype(bool)


def fill_planar(depth: np.ndarray, image: np.ndarray, K: np.ndarray, settings: PlanarFillSettings | None = None,
                box_depth: np.ndarray | None = None, veto: np.ndarray | None = None) -> np.ndarray:
    """Depths (H,W) float32 for the missing pixels of planar homogeneous regions, 0 elsewhere.

    depth: (H,W) float32 measured depth, 0 = missing; image: (H,W,3) uint8 RGB of the same size;
    K: (3,3) intrinsics of that size. Pixel centres at (j + 0.5, i + 0.5) as in the plane sweep.
    box_depth: (H,W) depth of the room's box (``room_box``; inf where a ray never meets it), or None.
    A region whose measured outline lies on the box takes the box's depth; any other region the plane
    its own measured depths span. veto: (H,W) depth (0 = none) of a stricter measurement (the plane sweep's
    when ``depth`` adds the sweep along the box): a region where at least ``min_veto`` of its pixels have
    one inside it (its border holds the outlines of what stands before it) and too few of those lie on the
    box does not take the box's depth.
    """
    st = settings or PlanarFillSettings()
    h, w = depth.shape
    labels = homogeneous_regions(image, st.canny_low, st.canny_high)
    out = np.zeros((h, w), np.float32)
    rays = pixel_rays(K, h, w).reshape(h, w, 3)
    unit = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    rng = np.random.default_rng(st.seed)
    for rows, cols, region, near in _regions(labels, st.min_region_frac * h * w, st.border_px):
        d = depth[rows, cols]
        support = near & (d > 0)
        missing = region & (d <= 0)
        if not missing.any():
            continue
        my, mx = np.nonzero(missing)
        if box_depth is not None and support.sum() >= st.min_box_support:
            bd = box_depth[rows, cols]
            on_box = np.abs(d[support] - bd[support]) < st.box_rel * bd[support]
            vetoed = False
            if veto is not None:
                inner = region
                if st.veto_inset_px > 0:
                    k = np.ones((2 * st.veto_inset_px + 1,) * 2, np.uint8)
                    inner = cv2.erode(region.astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0
                vs = inner & (veto[rows, cols] > 0)  # inside: an occluder's outline lies on the border
                vd, vb = veto[rows, cols][vs], bd[vs]
                vetoed = vd.size >= st.min_veto and (np.abs(vd - vb) < st.box_rel * vb).mean() < st.min_box_ratio
            if on_box.mean() >= st.min_box_ratio and not vetoed:
                z = bd[missing]
                ok = np.isfinite(z)
                out[rows.start + my[ok], cols.start + mx[ok]] = z[ok]
                continue
        if support.sum() < st.min_support:
            continue
        r = rays[rows, cols]
        pts = r[support] * d[support][:, None]
        fit = fit_plane(pts, st.inlier_rel, st.iterations, rng)
        if fit is None or fit[2].mean() < st.min_inlier_ratio:
            continue
        nrm, dist, inl = fit
        sv = np.linalg.svd(pts[inl] - pts[inl].mean(0), compute_uv=False)
        if sv[1] < st.min_spread * sv[0]:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            z = dist / (r[missing] @ nrm)
        ok = (np.abs(unit[rows, cols][missing] @ nrm) >= st.min_cos) & (z > 0) & np.isfinite(z)
        z_in = pts[inl, 2]
        ok &= (z > 0.5 * z_in.min()) & (z < 2.0 * z_in.max())  # no fills far beyond what was measured
        out[rows.start + my[ok], cols.start + mx[ok]] = z[ok]
    return out
