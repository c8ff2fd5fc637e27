"""Class-agnostic 2D segmenter without weights: superpixels merged on colour + geometry.

1. Felzenszwalb (or SLIC) superpixels of the image at a working resolution.
2. Region adjacency graph; an edge's weight adds three terms, each scaled to ~1 at a real
   object boundary: Lab colour distance of the regions' means, the mean relative depth jump
   across the shared boundary, and 1 - cos of the regions' mean normals (from the depth map,
   e.g. the reconstruction rendered with a z-buffer, ``projection.render_depth``).
3. Rounds of mutual-best merges (each region merges with its cheapest neighbour when that
   neighbour's cheapest is also it, weight < threshold); region and boundary statistics are
   sums, so a round adds them up (bincount) instead of revisiting pixels, and merged regions
   are compared by their new means. Regions below ``min_area`` then join their cheapest
   neighbour; masks still below are dropped.
Superpixels straddling a depth discontinuity are split first (same colour in front and behind).
Everything is vectorised over pixels, regions and edges (bincount / unique / sparse graphs).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .masks import labels_to_masks
from .projection import normals_from_depth, scale_intrinsics


@dataclass
class ClassicalSettings:
    max_side: int = 320  # working resolution (longest side, px)
    superpixels: str = "felzenszwalb"  # or "slic"
    fz_scale: float = 15.0
    fz_sigma: float = 0.6
    fz_min_size: int = 15
    fz_depth_weight: float = 0.0  # weight of log depth as an extra superpixel channel (0: colour only)
    slic_segments: int = 800
    slic_compactness: float = 10.0
    color_scale: float = 12.0  # Lab distance counted as one unit
    depth_scale: float = 0.06  # relative depth jump across a boundary counted as one unit
    depth_cut: float = 0.04  # superpixels are split where neighbouring pixels' depths jump more (relative)
    normal_scale: float = 0.4  # 1 - cos(angle) counted as one unit (~53 degrees)
    threshold: float = 1.0
    min_area: float = 0.004  # fraction of the image; smaller regions merge, then are dropped
    max_rounds: int = 200


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    ids, inv = np.unique(labels, return_inverse=True)
    return inv.reshape(labels.shape).astype(np.int32), len(ids)


class _Graph:
    """Region adjacency graph as sufficient statistics, so a merge round never touches pixels.

    Regions (n): area, Lab sum, normal sum and count of pixels with a normal. Edges (E, a<b):
    boundary pixel pairs, and the sum / count of their relative depth jumps.
    """

    def __init__(self, labels: np.ndarray, n: int, lab: np.ndarray, normals: np.ndarray | None,
                 z: np.ndarray | None) -> None:
        flat = labels.ravel()
        self.n = n
        self.area = np.bincount(flat, minlength=n).astype(np.float64)
        self.lab = np.stack([np.bincount(flat, lab[..., c].ravel(), n) for c in range(3)], 1)
        self.nrm = self.nvalid = None
        if normals is not None:
            valid = np.abs(normals).sum(-1).ravel() > 0
            self.nrm = np.stack([np.bincount(flat, normals[..., c].ravel() * valid, n) for c in range(3)], 1)
            self.nvalid = np.bincount(flat, valid, n).astype(np.float64)
        a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
        b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
        diff = a != b
        jump = jcnt = np.zeros(int(diff.sum()))
        if z is not None:
            za = np.concatenate([z[:, :-1].ravel(), z[:-1, :].ravel()])[diff]
            zb = np.concatenate([z[:, 1:].ravel(), z[1:, :].ravel()])[diff]
            ok = np.isfinite(za) & np.isfinite(zb) & (za > 0) & (zb > 0)
            jump = np.where(ok, np.minimum(np.abs(za - zb) / np.maximum(np.minimum(za, zb), 1e-6), 1.0), 0.0)
            jcnt = ok.astype(np.float64)
        self.has_depth = z is not None
        self._set_edges(a[diff], b[diff], np.ones(len(jump)), jump, jcnt)

    def _set_edges(self, a, b, cnt, jsum, jcnt) -> None:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keep = lo != hi
        key = lo[keep].astype(np.int64) * self.n + hi[keep]
        ukey, inv = np.unique(key, return_inverse=True)
        self.ea, self.eb = ukey // self.n, ukey % self.n
        E = len(ukey)
        self.cnt = np.bincount(inv, cnt[keep], E)
        self.jsum = np.bincount(inv, jsum[keep], E)
        self.jcnt = np.bincount(inv, jcnt[keep], E)

    def weights(self, st: ClassicalSettings) -> np.ndarray:
        """(E,) colour + depth-jump + normal-angle terms, each ~1 at a real boundary."""
        ea, eb = self.ea, self.eb
        mean_lab = self.lab / self.area[:, None]
        w = np.linalg.norm(mean_lab[ea] - mean_lab[eb], axis=1) / st.color_scale
        if self.has_depth:
            w = w + self.jsum / np.maximum(self.jcnt, 1) / st.depth_scale
        if self.nrm is not None:
            norm = np.linalg.norm(self.nrm, axis=1)
            has = norm > 0.5 * self.nvalid  # the region's normals agree
            nn = self.nrm / (norm[:, None] + 1e-12)
            cos = (nn[ea] * nn[eb]).sum(1)
            w = w + np.where(has[ea] & has[eb], (1 - cos) / st.normal_scale, 0.0)
        return w

    def merge(self, sel: np.ndarray) -> np.ndarray:
        """Merge the regions joined by the selected edges; returns (n_old,) new region ids."""
        g = coo_matrix((np.ones(int(sel.sum())), (self.ea[sel], self.eb[sel])), shape=(self.n, self.n))
        k, comp = connected_components(g, directed=False)
        self.area = np.bincount(comp, self.area, k)
        self.lab = np.stack([np.bincount(comp, self.lab[:, c], k) for c in range(3)], 1)
        if self.nrm is not None:
            self.nrm = np.stack([np.bincount(comp, self.nrm[:, c], k) for c in range(3)], 1)
            self.nvalid = np.bincount(comp, self.nvalid, k)
        ea, eb = comp[self.ea], comp[self.eb]
        self.n = k
        self._set_edges(ea, eb, self.cnt, self.jsum, self.jcnt)
        return comp


def _split_at_depth_edges(labels: np.ndarray, z: np.ndarray, cut: float) -> np.ndarray:
    """Connected components of the pixel graph linking 4-neighbours of the same superpixel
    whose depths differ by less than ``cut`` (relative): a superpixel straddling a depth
    discontinuity (same colour in front and behind) becomes two."""
    H, W = labels.shape
    idx = np.arange(H * W).reshape(H, W)
    zf = np.nan_to_num(z, nan=0.0)
    pairs, cut_labels = [], []
    for a, b in ((np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:-1, :], np.s_[1:, :])):
        za, zb = zf[a], zf[b]
        jump = np.abs(za - zb) / np.maximum(np.minimum(za, zb), 1e-6)
        same = labels[a] == labels[b]
        ok = same & ((jump < cut) | (za <= 0) | (zb <= 0))
        pairs.append((idx[a][ok], idx[b][ok]))
        cut_labels.append(labels[a][same & ~ok])
    cut_any = np.zeros(labels.max() + 1, bool)
    cut_any[np.concatenate(cut_labels)] = True
    if not cut_any.any():
        return labels
    r = np.concatenate([p[0] for p in pairs])
    c = np.concatenate([p[1] for p in pairs])
    g = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(H * W, H * W))
    _, comp = connected_components(g, directed=False)
    # only superpixels with a cut inside are replaced by their components
    return np.where(cut_any[labels], labels.max() + 1 + comp.reshape(H, W), labels).astype(np.int32)


def _best_edge(n: int, ea: np.ndarray, eb: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(n,) index of each region's cheapest edge (-1 for isolated regions)."""
    ends = np.concatenate([ea, eb])
    ew = np.concatenate([w, w])
    eid = np.concatenate([np.arange(len(w)), np.arange(len(w))])
    order = np.lexsort((ew, ends))
    first = np.ones(len(order), bool)
    first[1:] = ends[order][1:] != ends[order][:-1]
    best = np.full(n, -1, np.int64)
    best[ends[order][first]] = eid[order][first]
    return best


class ClassicalSegmenter:
    """Weight-free segmenter; follows ``masks.Segmenter``."""

    name = "classical"

    def __init__(self, settings: ClassicalSettings | None = None) -> None:
        self.settings = settings or ClassicalSettings()

    def labels(self, image: np.ndarray, depth: np.ndarray | None = None,
               intrinsics: np.ndarray | None = None) -> np.ndarray:
        """(h,w) int32 region labels at the working resolution (see ``working_size``)."""
        from skimage.segmentation import felzenszwalb, slic

        st = self.settings
        H, W = image.shape[:2]
        w, h = self.working_size((W, H))
        img = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != (W, H) else image
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
        lab[..., 0] *= 100 / 255  # OpenCV 8-bit Lab -> L in [0,100], a/b offset by 128 (distances only)
        z = normals = None
        if depth is not None:
            z = cv2.resize(depth.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
            z = np.where(np.isfinite(z) & (z > 0), z, np.nan)
            K = scale_intrinsics(intrinsics, (W, H), (w, h)) if intrinsics is not None else \
                np.array([[max(w, h), 0, w / 2], [0, max(w, h), h / 2], [0, 0, 1]], np.float64)
            zs = cv2.medianBlur(np.nan_to_num(z, nan=0.0), 5)
            normals = normals_from_depth(np.where(np.isfinite(z), zs, np.nan), K)
        if st.superpixels == "slic":
            labels = slic(img, n_segments=st.slic_segments, compactness=st.slic_compactness, start_label=0)
        else:
            fz_in = img
            if z is not None and st.fz_depth_weight > 0:  # log depth as a 4th channel (~ 0-255 per e-fold)
                ld = np.log(np.where(np.isfinite(z), z, np.nanmedian(z) if np.isfinite(z).any() else 1.0))
                fz_in = np.concatenate([img.astype(np.float32), (st.fz_depth_weight * ld)[..., None]], -1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                labels = felzenszwalb(fz_in, scale=st.fz_scale, sigma=st.fz_sigma, min_size=st.fz_min_size,
                                      channel_axis=-1)
        if z is not None:
            labels = _split_at_depth_edges(labels, z, st.depth_cut)
        labels, n = _relabel(labels)
        g = _Graph(labels, n, lab, normals, z)
        ids = np.arange(n)  # superpixel -> current region
        for _ in range(st.max_rounds):  # mutual-best merges below the threshold
            wt = g.weights(st)
            if len(wt) == 0:
                break
            best = _best_edge(g.n, g.ea, g.eb, wt)
            e = np.arange(len(wt))
            sel = (best[g.ea] == e) & (best[g.eb] == e) & (wt < st.threshold)
            if not sel.any():
                break
            ids = g.merge(sel)[ids]
        min_px = st.min_area * w * h
        for _ in range(10):  # small regions join their cheapest neighbour
            small = g.area < min_px
            if not small.any() or len(g.ea) == 0:
                break
            best = _best_edge(g.n, g.ea, g.eb, g.weights(st))
            src = np.flatnonzero(small & (best >= 0))
            if len(src) == 0:
                break
            sel = np.zeros(len(g.ea), bool)
            sel[best[src]] = True
            ids = g.merge(sel)[ids]
        labels = ids[labels].astype(np.int32)
        return labels

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        W, H = size
        s = min(1.0, self.settings.max_side / max(W, H))
        return max(8, round(W * s)), max(8, round(H * s))

    def segment(self, image: np.ndarray, depth: np.ndarray | None = None,
                intrinsics: np.ndarray | None = None) -> list[np.ndarray]:
        """image (H,W,3) uint8; depth (H,W) (NaN unknown); K (3,3) -> (H,W) bool masks, largest first."""
        H, W = image.shape[:2]
        labels = self.labels(image, depth, intrinsics)
        if labels.shape != (H, W):
            labels = cv2.resize(labels, (W, H), interpolation=cv2.INTER_NEAREST)
        return labels_to_masks(labels, int(self.settings.min_area * H * W))
