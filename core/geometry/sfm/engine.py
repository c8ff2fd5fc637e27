"""SfmEngine: pycolmap SfM + CPU plane-sweep MVS + consistency filtering + fusion.

Stages (progress names): "sfm: features", "sfm: matching", "sfm: mapping" (colmap_sfm),
"dense: depth" (plane_sweep per keyframe; depth_filter + backprojection as soon as a
keyframe's neighbours have depth; a partial SemanticScene every ``partial_every``), "dense: planes"
(planar fills of blank surfaces from the room's box and local planes, checked like measured depth),
"fusion" (voxel downsampling + statistical outlier removal).
``Reconstruction.extras``: sparse_points (P,3), registered_keyframes (M,) indices into the
input list, dropped_keyframes (int), voxel_size (float), timings (seconds per stage), filled
({"points": how many points are planar fills, "confidence": theirs, FILLED_CONFIDENCE}).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np
import torch

from ...jobs import JobContext, JobError
from ...scene import Cameras, SemanticScene
from ..engine import Keyframe, Reconstruction
from ..torch_threads import torch_threads
from .colmap_sfm import SparseModel, run_sfm
from .focal_retry import run_sfm_with_focal_retry
from .depth_filter import backproject, consistency_filter, pixel_rays
from .fusion import PointSet, statistical_outliers, voxel_downsample
from .plane_sweep import plane_sweep
from .planar_fill import PlanarFillSettings, fill_planar
from .surface_check import box_factors, surface_costs
from ...scene.extent import scene_extent
from ...scene.align import up_prior
from ...scene.manhattan import manhattan_axes
from ...scene.room_box import find_room_box
from .vanishing_focal import VanishingFocalSettings, vanishing_focal
from .view_selection import depth_range, pair_scores, select_neighbours


#: How the focal length from the vanishing points is used (``SfmSettings.focal_from_lines``)
FOCAL_FROM_LINES = ("off", "check", "start", "prior", "fixed")

#: Confidence of the points a planar fill made rather than the plane sweep measured (measured points have
#: at least ``SfmSettings.min_confidence``), so a user can tell them apart.
FILLED_CONFIDENCE = 0.05


@dataclass
class SfmSettings:
    """Every knob of the classical engine (stored in the scene metadata as "settings")."""

    # 1024 SIFT features per keyframe (4096, then 2048 before) and 48 plane hypotheses (was 64): level on the
    # development rooms; with twice as many keyframes (view_stride) 1024 kept the mapping's accuracy and its time
    # from doubling (docs/experiments/geometry.md)
    max_features: int = 1024  # SIFT features per keyframe
    # Chosen on the hard_dev rooms (flat walls, fast pans; docs/experiments/geometry.md): against COLMAP's
    # defaults (overlap 10, peak 0.0067, 15 / 30 / 100) they place 50 % of hard_dev_2 instead of 22 %.
    # GLOMAP ("global") registers more keyframes there but with wrong poses (ATE 52 cm on them).
    # SIFT matching compares each keyframe with the next match_overlap ones and, with match_quadratic, with those
    # 2, 4, 8, ... ahead (matching_pairs). The "overlap 20" chosen above was COLMAP's sequential pairing with
    # quadratic overlap, which in pycolmap 4 gives only the latter: these two keep exactly those pairs. Near
    # neighbours too (overlap 5, 10, 20) were level on the development walks (docs/experiments/geometry.md).
    match_overlap: int = 1
    match_quadratic: bool = True
    mapper: str = "incremental"  # or "global" (GLOMAP)
    sift_peak_threshold: float | None = 0.002  # None: COLMAP's 0.0067; lower finds faint texture
    min_num_matches: int = 10  # how much evidence an image pair / a new image / the first pair needs
    abs_pose_min_inliers: int = 15
    init_min_inliers: int = 50
    # Point tracks through every frame as matches between nearby keyframes (docs/experiments/geometry.md).
    use_tracks: bool = True
    track_min_shared: int = 15  # tracks two keyframes must share to be matched by them
    track_max_gap: int = 1  # keyframes apart, at most (a track drifts as it ages; SIFT makes longer links)
    min_tri_angle: float = 0.5  # degrees a sparse point's rays must span (COLMAP: 1.5)
    ba_global_ratio: float = 1.4  # model growth between global bundle adjustments (COLMAP: 1.1)
    ba_global_max_iterations: int = 25  # (COLMAP: 50); these two halve the mapping time with tracks
    # Seeded mapping runs until two agree on the camera poses (model_consensus): one run folds the model
    # now and then; 1 = a single run with COLMAP's own fresh draw. Five rather than three: every run of a walk
    # that is not settled by three scored against the truth, a fourth or fifth seed brought an agreeing pair on
    # val_2 (13.3 -> 3.1 cm) and cost nothing where two runs agree at once (docs/experiments/geometry.md).
    mapping_runs: int = 5
    # Register the frames between keyframes from their tracks' 3D points (else they are interpolated).
    register_frames: bool = True
    # Where the focal length's self-calibration starts, x the longest side (COLMAP's 1.2). 0.8 (64 degrees,
    # as phones film rooms) fixed a dev walk but made test_bedroom settle on a wrong focal in 2 of 2 runs
    # (65 cm ATE): the start decides which of two minima the calibration finds (docs/experiments/geometry.md).
    focal_factor: float = 1.2
    # Without known intrinsics, the focal length from the keyframes' vanishing points (vanishing_focal), where
    # they agree on one: "check" = compared with the self-calibrated one afterwards (a disagreement becomes a
    # warning), "start" / "prior" / "fixed" = handed to run_sfm as its focal_mode, "off" = not estimated.
    # Used in the mapping it was level on the validation and hard_dev walks, where even the true focal length
    # does not improve the paths; as a check it flags the validation walk whose self-calibration went 17 % off
    # the true focal length (docs/experiments/geometry.md).
    focal_from_lines: str = "check"
    # With "check": when the seeded mapping runs never agree, map once more with the lines' focal length fixed and
    # keep that when its runs agree (focal_retry). On a development walk whose self-calibration settles wrong
    # (dev640_1 with SIFT from octave 0: 65 cm) it maps the path to 1.2 cm; it fires on one of the 17 development
    # and validation walks and on dev640_3, both keeping the first model (docs/experiments/geometry.md).
    focal_retry: bool = True
    num_threads: int = 2
    # The dense stage and the scene's cameras (and so the semantics stage) use every view_stride-th registered
    # keyframe; the others stay registered frames of the path. The keyframes come twice as dense as the views
    # (KeyframeSettings.min_motion): the mapping is better tied together (dev walks' median ATE 10.6 -> 4.3 cm)
    # while the dense and semantics stages see as many views as before (docs/experiments/geometry.md).
    view_stride: int = 2
    mvs_max_size: int = 320  # longest side of the MVS working resolution
    num_depths: int = 48  # plane hypotheses, uniform in inverse depth
    num_neighbours: int = 4  # source views per reference (MVS and consistency check)
    zncc_radius: int = 3  # 7x7 window
    best_k: int = 2  # sources averaged per plane (occlusion robustness)
    min_confidence: float = 0.1  # above FILLED_CONFIDENCE: a measured point is never mistaken for a fill
    min_consistent_views: int = 2
    max_rel_depth_error: float = 0.01
    max_reproj_error_px: float = 1.0
    # Planar fills of homogeneous regions whose measured depth lies on one plane or on the room's box
    # (planar_fill, room_box), kept where they pass the same consistency check as measured depth against the
    # neighbours' depth, measured or filled; their points carry confidence FILLED_CONFIDENCE. Checked more
    # loosely (one view, 2 %) they filled more but doubled Acc on the dev walks (docs/experiments/geometry.md).
    planar_fill: bool = True
    room_box: bool = True
    # The box square to the axes of the keyframes' straight lines (core.scene.manhattan) rather than to the
    # measured points' (which tilt with the few measured patches of blank walls).
    line_axes: bool = True
    box_bins: int = 150  # the box's layers are scene extent / box_bins thick
    # Unmeasured textured pixels whose windows match the neighbours on the room's box (warped by its depth, about
    # as well as by any nearer copy of it) are measured there (surface_check): the fronto-parallel sweep misses
    # slanted floors and walls. They support the planar fills too (docs/experiments/geometry.md).
    box_photo: bool = True
    box_sweep_near: float = 0.5  # the sweep along the box runs from this fraction of its depth to just beyond it
    box_sweep_planes: int = 12
    box_min_zncc: float = 0.7  # a pixel is on the box where it matches its neighbours this well there ...
    box_cost_margin: float = 0.02  # ... and no nearer copy of the box matches better by more than this
    min_texture_std: float = 0.01  # grey std (0-1) of a window that can match at all (as the plane sweep)
    voxel_size: float | None = None  # None: scene extent / voxel_divisions
    voxel_divisions: int = 400
    outlier_k: int = 12
    outlier_std_ratio: float = 2.0
    partial_every: int = 4  # keyframes of dense depth between partial scenes
    device: str = "auto"  # torch device of the plane sweep: "auto" = CUDA when present
    seed: int = 0

    def __post_init__(self) -> None:
        if self.focal_from_lines not in FOCAL_FROM_LINES:
            raise ValueError(f"focal_from_lines {self.focal_from_lines!r}: use one of {', '.join(FOCAL_FROM_LINES)}")
        if self.view_stride < 1:
            raise ValueError(f"view_stride must be at least 1, got {self.view_stride}")

    def sfm_kwargs(self) -> dict:
        """These settings as keyword arguments of ``run_sfm`` (all but the images, intrinsics and tracks)."""
        return dict(max_features=self.max_features, overlap=self.match_overlap, quadratic_overlap=self.match_quadratic,
                    num_threads=self.num_threads,
                    seed=self.seed, mapper=self.mapper, sift_peak_threshold=self.sift_peak_threshold,
                    min_num_matches=self.min_num_matches, abs_pose_min_inliers=self.abs_pose_min_inliers,
                    init_min_inliers=self.init_min_inliers, track_min_shared=self.track_min_shared,
                    track_max_gap=self.track_max_gap, min_tri_angle=self.min_tri_angle,
                    ba_global_ratio=self.ba_global_ratio, ba_global_max_iterations=self.ba_global_max_iterations,
                    mapping_runs=self.mapping_runs, focal_factor=self.focal_factor)


def views_of(sparse: SparseModel, frame_of_keyframe: list[int], stride: int) -> SparseModel:
    """The model with every ``stride``-th registered keyframe as a view (the dense stage's and the cameras'); the
    other registered keyframes join ``frame_index`` / ``frame_poses`` as registered frames.

    frame_of_keyframe: the video frame index of each keyframe given to ``run_sfm``.
    """
    if stride == 1:
        return sparse
    rows = np.arange(len(sparse.registered))
    view = rows % stride == 0
    rest = rows[~view]
    added = np.asarray(frame_of_keyframe, np.int64)[sparse.registered[rest]]
    # a keyframe's own track registration gives way to its pose from the mapping
    kept = ~np.isin(sparse.frame_index, added)
    return replace(
        sparse, registered=sparse.registered[view], world_from_camera=sparse.world_from_camera[view],
        visibility=[v for v, keep in zip(sparse.visibility, view) if keep],
        images=[im for im, keep in zip(sparse.images, view) if keep],
        frame_index=np.concatenate([sparse.frame_index[kept], added]),
        frame_poses=np.concatenate([sparse.frame_poses.reshape(-1, 4, 4)[kept], sparse.world_from_camera[rest]]))


class SfmEngine:
    """Classical engine; ``reconstruct`` follows the GeometryEngine protocol."""

    name = "sfm"

    def __init__(self, settings: SfmSettings | None = None) -> None:
        self.settings = settings or SfmSettings()

    def reconstruct(
        self, keyframes: list[Keyframe], ctx: JobContext, intrinsics: np.ndarray | None = None
    ) -> Reconstruction:
        st = self.settings
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        tracks = [kf.tracks for kf in keyframes] if st.use_tracks else None
        frames = [f for kf in keyframes for f in kf.tracked_frames()] if tracks and st.register_frames else None
        focal_px, focal_record, use = None, None, st.focal_from_lines
        if intrinsics is None and use != "off":
            ctx.progress("sfm: focal length", 0, 1)
            focal_px, focal_record = vanishing_focal([kf.image for kf in keyframes], VanishingFocalSettings(seed=st.seed))
            ctx.progress("sfm: focal length", 1, 1)
        given = {"focal_px": focal_px, "focal_mode": use} if focal_px is not None and use != "check" else {}
        images = [kf.image for kf in keyframes]
        kwargs = dict(intrinsics=intrinsics, tracks=tracks, frames=frames, **given, **st.sfm_kwargs())
        if use == "check" and st.focal_retry:
            sparse, retry = run_sfm_with_focal_retry(images, ctx, focal_px, **kwargs)
        else:
            sparse, retry = run_sfm(images, ctx, **kwargs), None
        if focal_px is not None:
            focal_record.update(self_calibrated=round(float(sparse.K[0, 0]), 2),
                                disagreement=round(abs(float(sparse.K[0, 0]) / focal_px - 1), 4), used=use)
            if retry is not None and retry["retried"]:
                focal_record["retry"] = retry
        timings.update({f"sfm_{k}": v for k, v in sparse.timings.items()})
        timings["sfm"] = time.perf_counter() - t0
        mapped = sparse.registered
        sparse = views_of(sparse, [kf.index for kf in keyframes], st.view_stride)
        h, w = keyframes[0].image.shape[:2]
        regs = [keyframes[i] for i in sparse.registered]
        cameras = Cameras(
            np.repeat(sparse.K[None].astype(np.float32), len(regs), 0),
            sparse.world_from_camera.astype(np.float32),
            np.array([kf.timestamp for kf in regs], np.float64),
            np.array([kf.index for kf in regs], np.int32),
            (w, h),
        )
        meta = {"engine": self.name, "settings": asdict(st)}

        t0 = time.perf_counter()
        with torch_threads(st.num_threads):
            cloud, room_axes = self._dense(sparse, ctx, cameras, meta)
        timings["dense"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        ctx.progress("fusion", 0, 2)
        extent = scene_extent(cloud.points) if len(cloud) else scene_extent(sparse.points)
        voxel = st.voxel_size if st.voxel_size else extent / st.voxel_divisions
        cloud = voxel_downsample(cloud, voxel)
        ctx.progress("fusion", 1, 2)
        cloud = cloud.subset(statistical_outliers(cloud.points, st.outlier_k, st.outlier_std_ratio, st.num_threads))
        ctx.progress("fusion", 2, 2)
        timings["fusion"] = time.perf_counter() - t0
        if len(cloud) == 0:
            raise JobError(f"camera motion was recovered for {len(sparse.registered)} of {len(keyframes)} keyframes "
                           "but no dense surface passed the checks; is the scene textured and in focus?")
        return Reconstruction(
            cloud.points, cloud.colors, cloud.confidence, cloud.frame_id, cameras,
            extras={
                "sparse_points": sparse.points.astype(np.float32),
                "registered_keyframes": mapped,  # all that the mapping registered; the views are the cameras
                "dropped_keyframes": len(keyframes) - len(mapped),
                "voxel_size": voxel,
                # Points whose voxel holds planar fills only (a measured point in a voxel raises its confidence).
                "filled": {"points": int((cloud.confidence <= FILLED_CONFIDENCE).sum()),
                           "confidence": FILLED_CONFIDENCE},
                "timings": timings,
                "mapping": sparse.mapping,
                # the vanishing points' focal length beside the self-calibrated one (None with known intrinsics)
                "focal_from_lines": focal_record,
                # the room's axes from the keyframes' lines (rows: wall, wall, up), for whatever aligns to the room
                "room_axes": None if room_axes is None else room_axes.tolist(),
                "frame_poses": {"index": sparse.frame_index,
                                "world_from_camera": sparse.frame_poses.astype(np.float32)},
            },
        )

    def _dense(self, sparse: SparseModel, ctx: JobContext, cameras: Cameras, meta: dict
               ) -> tuple[PointSet, np.ndarray | None]:
        """Depth per registered keyframe, consistency filter as soon as its neighbours are done; -> the points
        and the room's axes (3,3) the planar fills squared the box to (None without)."""
        st = self.settings
        m = len(sparse.images)
        h0, w0 = sparse.images[0].shape[:2]
        s = min(1.0, st.mvs_max_size / max(h0, w0))
        size = (max(8, round(w0 * s)), max(8, round(h0 * s)))
        K = sparse.K.copy()
        K[0] *= size[0] / w0  # edge-based pixel coordinates scale exactly
        K[1] *= size[1] / h0
        imgs = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) if size != (w0, h0) else im
                for im in sparse.images]
        wfc = sparse.world_from_camera
        nbrs = select_neighbours(pair_scores(wfc, sparse.points, sparse.visibility), st.num_neighbours)
        all_z = np.concatenate([depth_range(wfc[i], sparse.points, sparse.visibility[i], (0.1, 100.0))
                                for i in range(m)])
        fallback = (float(all_z.min()), float(all_z.max()))

        device = ("cuda" if torch.cuda.is_available() else "cpu") if st.device == "auto" else st.device
        depths: list[np.ndarray | None] = [None] * m
        confs: list[np.ndarray | None] = [None] * m
        done_filter = np.zeros(m, bool)
        kept: list[np.ndarray] = [np.zeros(size[::-1], np.float32)] * m  # depth that passed the filter, per view
        parts: list[PointSet] = []
        last_partial = 0
        ctx.progress("dense: depth", 0, m)
        for i in range(m):
            ctx.check_cancel()
            if len(nbrs[i]) == 0:
                depths[i] = np.zeros(size[::-1], np.float32)
                confs[i] = depths[i].copy()
            else:
                rng = depth_range(wfc[i], sparse.points, sparse.visibility[i], fallback)
                res = plane_sweep(imgs[i], [imgs[j] for j in nbrs[i]], K, wfc[i], [wfc[j] for j in nbrs[i]],
                                  rng, st.num_depths, st.zncc_radius, st.best_k, device=device)
                res.depth[res.confidence < st.min_confidence] = 0
                depths[i], confs[i] = res.depth, res.confidence
            ctx.progress("dense: depth", i + 1, m)
            ready = [r for r in range(m) if not done_filter[r] and depths[r] is not None
                     and all(depths[j] is not None for j in nbrs[r])]
            for r in ready:
                part, kept[r] = self._filter_view(r, depths, confs, imgs, nbrs, K, wfc)
                parts.append(part)
                done_filter[r] = True
            # a partial scene every partial_every keyframes, or as soon after as some view has passed the filter
            if i + 1 - last_partial >= st.partial_every and i + 1 < m and any(len(p) for p in parts):
                so_far = PointSet.concat(parts)
                ctx.partial(SemanticScene.from_points(so_far.points, so_far.colors, so_far.confidence,
                                                      so_far.frame_id, cameras, meta))
                last_partial = i + 1
        measured = PointSet.concat(parts)
        if st.planar_fill and len(measured):
            filled, axes = self._fill_planes(kept, imgs, nbrs, K, wfc, ctx, measured.points, device)
            return PointSet.concat([measured, filled]), axes
        return measured, None

    def _fill_planes(self, kept: list[np.ndarray], imgs: list[np.ndarray], nbrs: list[np.ndarray],
                     K: np.ndarray, wfc: np.ndarray, ctx: JobContext, measured: np.ndarray, device: str
                     ) -> tuple[PointSet, np.ndarray | None]:
        """Points that the room's box (from the measured points (N,3)) adds: measured by the sweep along it
        (``box_photo``; their sweep confidence) and planar fills (planar_fill; confidence FILLED_CONFIDENCE),
        each kept where a neighbour's depth, measured, swept or filled, confirms it; and the room's axes (3,3)
        from the keyframes' lines that the box is square to (None without)."""
        st = self.settings
        m = len(kept)
        fill_st = PlanarFillSettings(seed=st.seed)
        ctx.progress("dense: planes", 0, 3 * m)
        box = axes = None
        if st.room_box:
            axes = manhattan_axes(imgs, [K] * m, wfc, up_prior(wfc, measured)) if st.line_axes else None
            box = find_room_box(measured, wfc, scene_extent(measured) / st.box_bins, seed=st.seed, axes=axes)
        h, w = kept[0].shape
        rays = pixel_rays(K, h, w)
        box_depths = [box.depth(wfc[r], rays).reshape(h, w) if box is not None else None for r in range(m)]
        swept = [np.zeros((h, w), np.float32) for _ in range(m)]
        swept_conf = [np.zeros((h, w), np.float32) for _ in range(m)]
        for r in range(m):
            ctx.check_cancel()
            if box is not None and st.box_photo and len(nbrs[r]):
                swept[r], swept_conf[r] = self._on_box(r, box_depths[r], kept[r], imgs, nbrs, K, wfc, device)
            ctx.progress("dense: planes", r + 1, 3 * m)
        support = [np.where(kept[r] > 0, kept[r], swept[r]) for r in range(m)]
        fills = []
        for r in range(m):
            ctx.check_cancel()
            # the swept pixels support the fills, but where the plane sweep measured something before the box
            # inside a region, the region is not the box (the sweep along it cannot tell a near-by sofa from it)
            fills.append(fill_planar(support[r], imgs[r], K, fill_st, box_depths[r], kept[r] if st.box_photo else None))
            ctx.progress("dense: planes", m + r + 1, 3 * m)
        both = [np.where(support[r] > 0, support[r], fills[r]) for r in range(m)]
        parts = []
        for r in range(m):
            ctx.check_cancel()
            ctx.progress("dense: planes", 2 * m + r + 1, 3 * m)
            if len(nbrs[r]) < st.min_consistent_views:
                continue
            for depth, conf in ((swept[r], swept_conf[r]), (fills[r], np.full((h, w), FILLED_CONFIDENCE, np.float32))):
                if not (depth > 0).any():
                    continue
                keep, _ = consistency_filter(depth, wfc[r], [both[j] for j in nbrs[r]], [wfc[j] for j in nbrs[r]],
                                             K, st.min_consistent_views, st.max_rel_depth_error,
                                             st.max_reproj_error_px)
                flat = np.flatnonzero(keep.ravel())
                pts = backproject(depth, K, wfc[r]).reshape(-1, 3)[flat]
                parts.append(PointSet(pts.astype(np.float32), imgs[r].reshape(-1, 3)[flat].copy(),
                                      conf.ravel()[flat], np.full(flat.size, r, np.int32)))
        return PointSet.concat(parts), axes

    def _on_box(self, r: int, box_depth: np.ndarray, kept: np.ndarray, imgs: list[np.ndarray], nbrs: list[np.ndarray],
                K: np.ndarray, wfc: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
        """The box's depth (H,W) float32 at view r's unmeasured textured pixels whose windows match the
        neighbours there (ZNCC >= box_min_zncc) about as well as anywhere in front of it (within
        box_cost_margin), 0 elsewhere, and that ZNCC as confidence (H,W)."""
        st = self.settings
        factors = box_factors(st.box_sweep_near, st.box_sweep_planes)
        cost, std = surface_costs(imgs[r], [imgs[j] for j in nbrs[r]], K, wfc[r], [wfc[j] for j in nbrs[r]],
                                  box_depth, factors, st.zncc_radius, st.best_k, device)
        on = cost[len(factors) - 2]
        ok = ((1.0 - on >= st.box_min_zncc) & (on - cost.min(0) <= st.box_cost_margin)
              & (std > st.min_texture_std) & (kept <= 0) & np.isfinite(box_depth))
        return np.where(ok, box_depth, 0).astype(np.float32), np.where(ok, 1.0 - on, 0).astype(np.float32)

    def _filter_view(self, r: int, depths: list, confs: list, imgs: list[np.ndarray],
                     nbrs: list[np.ndarray], K: np.ndarray, wfc: np.ndarray) -> tuple[PointSet, np.ndarray]:
        """The view's points that passed the consistency filter, and their depth map (H,W) (0 elsewhere)."""
        st = self.settings
        if len(nbrs[r]) < st.min_consistent_views:
            return PointSet.empty(), np.zeros_like(depths[r])
        keep, fused = consistency_filter(
            depths[r], wfc[r], [depths[j] for j in nbrs[r]], [wfc[j] for j in nbrs[r]], K,
            st.min_consistent_views, st.max_rel_depth_error, st.max_reproj_error_px,
        )
        flat = np.flatnonzero(keep.ravel())
        pts = backproject(fused, K, wfc[r]).reshape(-1, 3)[flat]
        return (PointSet(pts.astype(np.float32), imgs[r].reshape(-1, 3)[flat].copy(),
                         confs[r].ravel()[flat].astype(np.float32), np.full(flat.size, r, np.int32)),
                np.where(keep, fused, 0).astype(np.float32))

