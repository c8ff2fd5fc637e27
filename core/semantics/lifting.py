"""2D masks of keyframes -> 3D segments of the point cloud.

1. Each keyframe: the points passing the z-buffer depth test (``projection.visible_points``)
   take the mask under their pixel (overlapping masks: the smallest wins). This gives a
   sparse mask x point matrix M (masks of all frames stacked) and a frame x point
   visibility matrix V.
2. Masks of different frames are matched by a view-consensus IoU: only the points both
   frames can see count, |a & b| / (|a & vis(b's frame)| + |b & vis(a's frame)| - |a & b|)
   (sparse products M M^T and M V^T), and by the cosine of their descriptors.
3. Matches are merged with union-find, best IoU first, never joining two groups that both
   hold a mask of the same frame (a frame's masks are distinct objects).
4. Groups linked by any mask match (also one the frame rule blocked, e.g. an object the
   segmenter split in one frame) merge when their aggregated descriptors agree
   (``segment_merge_cos``). Each group is one 3D segment. A point takes the segment most of
   its masks belong to (votes M^T G; between equal counts the smaller masks win).
5. A segment's descriptor is the weighted mean of its ``top_views`` best masks' descriptors
   (weight = visible points in the mask, halved when it touches the image border).
Small segments are dropped (-1); segments are numbered by size, largest first.
Everything is vectorised over points (numpy + scipy.sparse); loops run over keyframes and
over mask-graph edges only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..scene import Cameras, Segments, SemanticScene
from .masks import masks_to_labels
from .projection import point_spacing, scale_intrinsics, visible_points


@dataclass
class LiftSettings:
    rel_tol: float = 0.03  # depth test: a point is visible when z <= zbuffer * (1 + rel_tol)
    radius: int | None = None  # splat radius (px) of the z-buffer; None: from the point spacing
    min_mask_points: int = 20  # masks covering fewer visible points are ignored
    merge_iou: float = 0.25  # view-consensus IoU for two masks to be the same segment
    merge_cos: float = 0.6  # descriptor cosine for two masks to be the same segment (when given)
    # descriptor cosine for two matched segments to merge (1: never). 0.95 rather than 0.85: +1.5 mIoU on the
    # validation rooms with GT geometry, level with own geometry (core.bench.lift_study, docs/experiments/semantics.md)
    segment_merge_cos: float = 0.95
    # both cosines are raised to this quantile of the cosines between masks of the same frame
    # (different objects); None: fixed thresholds
    calibrate_quantile: float | None = 0.75
    min_segment_points: int = 50  # smaller 3D segments are dropped
    min_vote_frac: float = 0.2  # a point joins a segment when >= this fraction of its views agree
    top_views: int = 5  # masks averaged into a segment's descriptor
    graph_points: int = 200_000  # mask-mask IoUs are estimated on a random subset of this many points
    # points no segment took (never in a keyframe's mask, or outvoted) join the segment of their
    # nearest segmented point when it is within this many point spacings; None: they stay at -1
    fill_radius: float | None = None


@dataclass
class LiftResult:
    """segment_id (N,) int32 (-1 none); descriptor (S,D) float32 (D = 0 without descriptors);
    mask_segment: per frame (K_f,) int32 segment of each input mask (-1 dropped)."""

    segment_id: np.ndarray
    descriptor: np.ndarray
    mask_segment: list[np.ndarray]


def _frame_pairs(points: np.ndarray, K: np.ndarray, wfc: np.ndarray, cam_size: tuple[int, int],
                 masks: Sequence[np.ndarray], radius: int | None, spacing: float, st: LiftSettings
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One frame -> (visible point idx (V,), their local mask id (V,) -1 none, mask areas (K,), border (K,))."""
    if len(masks) == 0:
        H, W = cam_size[1], cam_size[0]
    else:
        H, W = masks[0].shape
    Kf = scale_intrinsics(K, cam_size, (W, H))
    idx, u, v = visible_points(points, Kf, wfc, (W, H), radius, st.rel_tol, spacing)
    if len(masks) == 0:
        return idx, np.full(len(idx), -1, np.int32), np.zeros(0), np.zeros(0, bool)
    labels = masks_to_labels(masks)
    stack = np.asarray(masks, bool)
    area = stack.reshape(len(stack), -1).sum(1)
    border = stack[:, 0, :].any(1) | stack[:, -1, :].any(1) | stack[:, :, 0].any(1) | stack[:, :, -1].any(1)
    return idx, labels[v, u], area, border


def _aggregate(desc: np.ndarray, weight: np.ndarray, group: np.ndarray, n: int, top: int) -> np.ndarray:
    """(n,D) normalised weighted mean of the ``top`` heaviest masks' descriptors of each group
    (masks with group -1 ignored). desc (K,D), weight (K,), group (K,)."""
    out = np.zeros((n, desc.shape[1]), np.float32)
    m = np.flatnonzero(group >= 0)
    if len(m) == 0:
        return out
    o = m[np.lexsort((-weight[m], group[m]))]
    starts = np.r_[0, np.flatnonzero(np.diff(group[o])) + 1]
    rank = np.arange(len(o)) - np.repeat(starts, np.diff(np.r_[starts, len(o)]))
    o = o[rank < top]
    np.add.at(out, group[o], desc[o] * weight[o, None].astype(np.float32))
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _pair_cos(d: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """(E,) float32 dot products of rows a[e] and b[e] of d (K,D), ``chunk`` pairs at a time: a
    1,000-frame video has millions of overlapping mask pairs, and gathering all their rows at once
    took 2 GB (the stage's peak memory)."""
    out = np.empty(len(a), np.float32)
    for i in range(0, len(a), chunk):
        out[i:i + chunk] = (d[a[i:i + chunk]] * d[b[i:i + chunk]]).sum(1)
    return out


def _same_frame_cos(d: np.ndarray) -> np.ndarray:
    """Cosines of all pairs of rows of d (K,D), upper triangle."""
    iu = np.triu_indices(len(d), 1)
    return (d @ d.T)[iu]


def _union_find(n: int, a: np.ndarray, b: np.ndarray, score: np.ndarray, frame: np.ndarray
                ) -> tuple[np.ndarray, int]:
    """Merge masks along edges, best first, never joining two groups that both hold a mask of
    the same frame (a frame's masks are different objects: this stops chains such as
    sofa - leaky mask - floor). Loops over edges (not points). Returns (n,) group ids, count."""
    parent = list(range(n))
    frames = [1 << int(f) for f in frame]  # bit set of the frames each group has a mask in

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in np.argsort(-score, kind="stable"):
        ra, rb = find(int(a[e])), find(int(b[e]))
        if ra != rb and not frames[ra] & frames[rb]:
            parent[rb] = ra
            frames[ra] |= frames[rb]
    roots = np.array([find(i) for i in range(n)], np.int64)
    _, group = np.unique(roots, return_inverse=True)
    return group.astype(np.int64), int(group.max()) + 1 if n else 0


def lift_masks(points: np.ndarray, cameras: Cameras, frame_masks: Sequence[Sequence[np.ndarray]],
               frame_descriptors: Sequence[np.ndarray] | None = None,
               settings: LiftSettings | None = None, spacing: float | None = None) -> LiftResult:
    """Lift per-keyframe masks to 3D segments.

    points (N,3); cameras with M keyframes; frame_masks: M lists of (H,W) bool masks (any
    resolution with the cameras' aspect); frame_descriptors: M arrays (K_f,D) or None;
    spacing: point spacing (e.g. the fusion voxel size), estimated when None.
    """
    st = settings or LiftSettings()
    N = len(points)
    M = len(cameras)
    if len(frame_masks) != M:
        raise ValueError(f"lift_masks: {len(frame_masks)} mask lists for {M} cameras")
    if spacing is None and st.radius is None:
        spacing = point_spacing(points)
    rows, cols, vrows, vcols = [], [], [], []
    mframe, mweight, mlocal, mspec = [], [], [], []
    offset = 0
    for f in range(M):
        masks = frame_masks[f]
        idx, lab, _, border = _frame_pairs(points, cameras.intrinsics[f], cameras.world_from_camera[f],
                                              cameras.image_size, masks, st.radius, spacing or 0.0, st)
        vrows.append(np.full(len(idx), f, np.int32))
        vcols.append(idx.astype(np.int32))  # int32: these pair lists are the stage's largest arrays
        inm = lab >= 0
        counts = np.bincount(lab[inm], minlength=len(masks))
        ok = counts >= st.min_mask_points
        keep = inm & np.append(ok, False)[lab]  # lab == -1 -> the appended False
        gid = np.cumsum(ok) - 1 + offset  # global ids of the kept masks
        rows.append(gid[lab[keep]].astype(np.int32))
        cols.append(idx[keep].astype(np.int32))
        mframe.append(np.full(int(ok.sum()), f, np.int32))
        mweight.append(counts[ok] * np.where(border[ok], 0.5, 1.0))
        mspec.append(1.0 - counts[ok] / max(len(idx), 1))  # specificity: 1 - share of the visible points
        mlocal.append(np.flatnonzero(ok))
        offset += int(ok.sum())
    nm = offset
    mframe_a = np.concatenate(mframe) if mframe else np.zeros(0, np.int32)
    mweight_a = np.concatenate(mweight).astype(np.float64) if mweight else np.zeros(0)
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    vrows_a, vcols_a = np.concatenate(vrows), np.concatenate(vcols)
    Mx = sparse.csr_matrix((np.ones(len(rows_a), np.float32), (rows_a, cols_a)), shape=(nm, N))
    # the IoU graph costs sum over points of (views)^2: estimate it on a subset of the points
    insub = np.random.default_rng(0).random(N) < st.graph_points / max(N, 1)
    ks, kv = insub[cols_a], insub[vcols_a]
    Ms = sparse.csr_matrix((np.ones(int(ks.sum()), np.float32), (rows_a[ks], cols_a[ks])), shape=(nm, N))
    Vs = sparse.csr_matrix((np.ones(int(kv.sum()), np.float32), (vrows_a[kv], vcols_a[kv])), shape=(M, N))
    seen = np.bincount(vcols_a, minlength=N)  # views in which each point is visible
    desc = None
    if frame_descriptors is not None:
        desc = np.concatenate([np.asarray(d, np.float32)[loc] for d, loc in zip(frame_descriptors, mlocal)])
        desc = desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)

    mask_cos, seg_cos = st.merge_cos, st.segment_merge_cos
    if desc is not None and nm and st.calibrate_quantile is not None:
        # masks of one frame are different objects: their cosines calibrate "different" in this
        # encoder's space (an encoder whose descriptors all look alike merges nothing)
        neg = np.concatenate([_same_frame_cos(desc[mframe_a == f]) for f in range(M)] + [np.zeros(0)])
        if len(neg):
            q = float(np.quantile(neg, st.calibrate_quantile))
            mask_cos, seg_cos = max(mask_cos, q), max(seg_cos, q)

    # 2. view-consensus IoU of masks of different frames
    inter = (Ms @ Ms.T).tocoo()
    a, b, n_ab = inter.row, inter.col, inter.data.astype(np.float64)
    sel = (a < b) & (mframe_a[a] != mframe_a[b])
    a, b, n_ab = a[sel], b[sel], n_ab[sel]
    MV = (Ms @ Vs.T).toarray()  # (nm, M) points of each mask visible in each frame
    iou = n_ab / np.maximum(MV[a, mframe_a[b]] + MV[b, mframe_a[a]] - n_ab, 1)
    edge = iou >= st.merge_iou
    if desc is not None and len(a):
        cand = np.flatnonzero(edge)  # only pairs that overlap enough need the descriptor test
        edge[cand] = _pair_cos(desc, a[cand], b[cand]) >= mask_cos
    # 3. union-find -> groups
    group, ng = _union_find(nm, a[edge], b[edge], iou[edge], mframe_a)
    # 4. groups linked by any mask match (also those the frame rule blocked: a segmenter that
    # splits an object in one frame) merge when their aggregated descriptors agree
    if desc is not None and nm and seg_cos < 1:
        gdesc = _aggregate(desc, mweight_a, group, ng, st.top_views)
        link = iou >= st.merge_iou
        ga, gb = group[a[link]], group[b[link]]
        link = ga != gb
        link[link] = _pair_cos(gdesc, ga[link], gb[link]) >= seg_cos
        g2 = sparse.coo_matrix((np.ones(int(link.sum())), (ga[link], gb[link])), shape=(ng, ng))
        ng, comp = connected_components(g2, directed=False)
        group = comp[group]
    # points vote
    # a vote weighs 1 to 1.5: between equal counts, the more specific (smaller) masks win
    spec = np.concatenate(mspec) if mspec else np.zeros(0)
    G = sparse.csr_matrix((1.0 + 0.5 * spec, (np.arange(nm), group)), shape=(nm, ng))
    votes = (Mx.T @ G).tocoo()  # (N, ng)
    q = np.round(votes.data * 1000).astype(np.int64)  # one int64 sort key: row, then votes descending
    vmax = int(q.max(initial=0)) + 1
    order = np.argsort(votes.row.astype(np.int64) * vmax + (vmax - 1 - q))
    r, c, d = votes.row[order], votes.col[order], votes.data[order]
    first = np.ones(len(r), bool)
    first[1:] = r[1:] != r[:-1]
    r, c, d = r[first], c[first], d[first]
    ok = d >= st.min_vote_frac * seen[r]  # (weights >= 1: a fraction of at least min_vote_frac)
    seg = np.full(N, -1, np.int64)
    seg[r[ok]] = c[ok]

    # drop small segments, renumber by size
    sizes = np.bincount(seg[seg >= 0], minlength=ng)
    big = np.flatnonzero(sizes >= st.min_segment_points)
    big = big[np.argsort(-sizes[big], kind="stable")]
    remap = np.full(ng + 1, -1, np.int64)
    remap[big] = np.arange(len(big))
    seg = remap[seg]  # -1 -> remap[-1] = -1
    mseg = remap[group] if nm else np.zeros(0, np.int64)

    # 5. descriptors: weighted mean of each segment's best views
    S = len(big)
    D = desc.shape[1] if desc is not None else 0
    out = _aggregate(desc, mweight_a, mseg, S, st.top_views) if D else np.zeros((S, 0), np.float32)
    per_frame, start = [], 0
    for f in range(M):
        ms = np.full(len(frame_masks[f]), -1, np.int32)
        n_ok = len(mlocal[f])
        ms[mlocal[f]] = mseg[start:start + n_ok]
        per_frame.append(ms)
        start += n_ok
    return LiftResult(seg.astype(np.int32), out, per_frame)


def fill_unsegmented(points: np.ndarray, segment_id: np.ndarray, radius: float) -> np.ndarray:
    """(N,) int32: ``segment_id`` with each -1 point given the segment of its nearest segmented point
    within ``radius`` (metres); points (N,3). Farther points stay -1."""
    from scipy.spatial import cKDTree

    out = np.asarray(segment_id, np.int32).copy()
    have, lack = np.flatnonzero(out >= 0), np.flatnonzero(out < 0)
    if len(have) == 0 or len(lack) == 0 or radius <= 0:
        return out
    dist, nn = cKDTree(points[have]).query(points[lack], k=1, distance_upper_bound=radius)
    near = np.isfinite(dist)
    out[lack[near]] = out[have[nn[near]]]
    return out


def segment_table(points: np.ndarray, segment_id: np.ndarray, descriptor: np.ndarray) -> Segments:
    """Segments of ``segment_id`` (N,) over ``points`` (N,3): counts, centroids, PCA boxes;
    label "" and score 0. descriptor (S,D)."""
    S = len(descriptor)
    valid = segment_id >= 0
    s = segment_id[valid].astype(np.int64)
    p = points[valid].astype(np.float64)
    count = np.bincount(s, minlength=S).astype(np.float64)
    c = np.stack([np.bincount(s, p[:, k], S) for k in range(3)], 1) / np.maximum(count, 1)[:, None]
    q = p - c[s]
    cov = np.stack([np.bincount(s, q[:, i] * q[:, j], S) for i in range(3) for j in range(3)], 1)
    cov = cov.reshape(S, 3, 3) / np.maximum(count, 1)[:, None, None]
    _, vec = np.linalg.eigh(cov + 1e-12 * np.eye(3))  # ascending eigenvalues, columns
    axes = vec[:, :, ::-1].transpose(0, 2, 1).copy()  # rows, largest variance first
    axes[:, 2] = np.cross(axes[:, 0], axes[:, 1])  # right-handed
    lo = np.full((S, 3), np.inf)
    hi = np.full((S, 3), -np.inf)
    if len(s):
        proj = np.einsum("nij,nj->ni", axes[s], q)
        np.minimum.at(lo, s, proj)
        np.maximum.at(hi, s, proj)
    empty = count == 0
    lo[empty] = hi[empty] = 0
    center = c + np.einsum("sij,si->sj", axes, (lo + hi) / 2)
    return Segments(
        descriptor=np.ascontiguousarray(descriptor, np.float32),
        point_count=count.astype(np.int32),
        centroid=c.astype(np.float32),
        box_center=center.astype(np.float32),
        box_axes=axes.astype(np.float32),
        box_extent=(hi - lo).astype(np.float32),
        label=[""] * S,
        score=np.zeros(S, np.float32),
    )


def lift_into_scene(scene: SemanticScene, frame_masks: Sequence[Sequence[np.ndarray]],
                    frame_descriptors: Sequence[np.ndarray] | None, space_id: str | None,
                    settings: LiftSettings | None = None, spacing: float | None = None) -> LiftResult:
    """Lift and write ``scene.segment_id``, ``scene.segments`` and metadata["text_space"] in place."""
    res = lift_masks(scene.points, scene.cameras, frame_masks, frame_descriptors, settings, spacing)
    st = settings or LiftSettings()
    if st.fill_radius:
        from .projection import point_spacing

        step = spacing if spacing else point_spacing(scene.points)
        res.segment_id = fill_unsegmented(scene.points, res.segment_id, st.fill_radius * step)
    scene.segment_id = res.segment_id
    scene.segments = segment_table(scene.points, res.segment_id, res.descriptor)
    scene.metadata["text_space"] = space_id
    return res
