"""Sparse structure from motion on keyframes with pycolmap (4.x API), on the CPU.

Pixel convention: intrinsics follow COLMAP, i.e. the centre of pixel (row i, col j) is
at (j + 0.5, i + 0.5). Poses are converted to OpenCV ``world_from_camera`` (COLMAP's
camera axes already are OpenCV's: x right, y down, z forward).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ...jobs import JobContext, JobError
from ..engine import FrameTracks, KeyframeTracks
from .frame_registration import register_frames, track_points
from .matching_pairs import sequential_pairs, write_pairs
from .model_consensus import MappingRun, choose, needs_another_run
from .track_matches import add_track_matches


@dataclass
class SparseModel:
    """Result of SfM, restricted to registered keyframes.

    registered:        (M,) int64 indices into the input keyframe list, increasing.
    K:                 (3,3) float64 pinhole intrinsics shared by all keyframes (after undistortion).
    world_from_camera: (M,4,4) float64, OpenCV axes.
    points:            (P,3) float64 sparse 3D points.
    visibility:        list of M int64 arrays: indices into ``points`` seen by each keyframe.
    images:            list of M (H,W,3) uint8 undistorted images.
    timings:           seconds per stage (features, matching, mapping).
    mapping:           the mapping runs and the pick among them (``ConsensusReport.as_dict()``).
    frame_index:       (R,) int64 video frame indices of other frames registered from their tracks;
    frame_poses:       (R,4,4) float64 their world_from_camera.
    runs:              every mapping run (``MappingRun``), only with ``run_sfm(all_runs=True)``.
    """

    registered: np.ndarray
    K: np.ndarray
    world_from_camera: np.ndarray
    points: np.ndarray
    visibility: list[np.ndarray]
    images: list[np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)
    mapping: dict = field(default_factory=dict)
    frame_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frame_poses: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    runs: list = field(default_factory=list)


@contextlib.contextmanager
def _cancel_bridge(ctx: JobContext) -> Iterator[object]:
    """A pycolmap CancellationToken that is cancelled as soon as ctx's cancel flag is set.

    pycolmap's long calls are C++ loops; raising from a callback is unsafe, so a small
    watcher thread forwards the flag to the token instead.
    """
    import pycolmap

    token = pycolmap.CancellationToken()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if ctx.cancel_event.wait(0.2):
                token.cancel()
                return

    thread = threading.Thread(target=watch, name="ov3r-sfm-cancel", daemon=True)
    thread.start()
    try:
        yield token
    except InterruptedError:  # what pycolmap raises once the token is cancelled
        ctx.check_cancel()
        raise
    finally:
        stop.set()
        thread.join(timeout=1.0)
    ctx.check_cancel()


def _ascii_workspace() -> Path:
    """A temp dir whose path is plain ASCII without spaces (COLMAP/glog on some platforms
    mishandle others, e.g. a non-ASCII user name on Windows)."""
    base = Path(tempfile.gettempdir())
    try:
        str(base).encode("ascii")
        ok = " " not in str(base)
    except UnicodeEncodeError:
        ok = False
    if not ok:
        for cand in (Path("C:/Temp"), Path("/tmp")):
            if cand.is_dir():
                base = cand
                break
    return Path(tempfile.mkdtemp(prefix="ov3r_sfm_", dir=str(base)))


#: COLMAP camera models a known focal length can seed (focal_mode "prior" / "fixed"): their parameters after
#: f, cx, cy at no distortion
_NO_DISTORTION = {"SIMPLE_PINHOLE": (), "SIMPLE_RADIAL": (0.0,), "RADIAL": (0.0, 0.0)}


def run_sfm(
    images: list[np.ndarray],
    ctx: JobContext,
    intrinsics: np.ndarray | None = None,
    max_features: int = 4096,
    overlap: int = 10,
    quadratic_overlap: bool = False,
    num_threads: int = 2,
    min_registered: int = 3,
    seed: int = 0,
    mapper: str = "incremental",
    sift_peak_threshold: float | None = None,
    sift_first_octave: int = -1,
    min_num_matches: int = 15,
    abs_pose_min_inliers: int = 30,
    init_min_inliers: int = 100,
    tracks: list[KeyframeTracks | None] | None = None,
    track_min_shared: int = 15,
    track_max_gap: int = 2,
    min_tri_angle: float = 1.5,
    abs_pose_max_error: float = 12.0,
    ba_global_ratio: float = 1.1,
    ba_global_max_iterations: int = 50,
    camera_model: str = "SIMPLE_RADIAL",
    verify_max_error: float = 4.0,
    mapping_runs: int = 1,
    frames: list[FrameTracks] | None = None,
    focal_factor: float = 1.2,
    focal_px: float | None = None,
    focal_mode: str = "start",
    all_runs: bool = False,
) -> SparseModel:
    """Run feature extraction, sequential matching and incremental mapping.

    images:     list of N (H,W,3) uint8 RGB keyframes, all the same size, in video order.
    intrinsics: optional (3,3) K in pixels of these images; then fixed (PINHOLE), else a shared
                ``camera_model`` camera is estimated (SIMPLE_RADIAL: the images are undistorted;
                SIMPLE_PINHOLE: focal length only).
    overlap / quadratic_overlap: SIFT matching compares each keyframe with the next ``overlap`` ones and, with
                ``quadratic_overlap``, with those 2, 4, 8, ... ahead as well (``matching_pairs``).
    mapper:     "incremental" (COLMAP) or "global" (GLOMAP's rotation averaging + global positioning).
    sift_peak_threshold: SIFT's contrast threshold (None: COLMAP's default); lower finds features on
                faint texture. sift_first_octave: -1 (COLMAP) detects from the image upsampled 2x, 0 from
                the image itself (less work, the finest scale lost: fewer frames placed on the validation
                walks, docs/experiments/geometry.md). min_num_matches / abs_pose_min_inliers /
                init_min_inliers: how much evidence an image pair / a new image / the initial pair needs
                (COLMAP: 15 / 30 / 100).
    min_tri_angle: degrees a 3D point's rays must span to be kept (COLMAP: 1.5); lower keeps the
                points of a slowly moving camera.
    abs_pose_max_error: px of reprojection error an inlier of a new image's pose may have (COLMAP: 12).
    ba_global_ratio: the model grows by this factor (images and points) between two global bundle
                adjustments (COLMAP: 1.1); ba_global_max_iterations: their iterations (COLMAP: 50).
    verify_max_error: px of epipolar error an inlier of a verified pair may have (COLMAP: 4; with tracks).
    mapping_runs: incremental mapping runs at most: 1 keeps COLMAP's own fresh RANSAC draw; 2 or more map
                with the seeds ``seed``, ``seed + 1``, ... until two runs agree on the camera poses and keep
                one of those (``model_consensus``), which guards against a draw that folds the model.
                all_runs: map with every one of the ``mapping_runs`` seeds, two agreeing or not, and return them
                all in ``SparseModel.runs`` (``core.bench.mapping_runs`` scores each; the pick is then among all).
    focal_factor: without ``intrinsics``, the focal length the self-calibration starts from, in units of
                the longest image side (COLMAP: 1.2, a 45 degree field of view).
    focal_px:   without ``intrinsics``, a focal length (pixels) known beforehand (``vanishing_focal``), used
                by ``focal_mode``: "start" = the self-calibration starts from it instead of ``focal_factor``;
                "prior" = the camera also carries it as COLMAP's prior focal length (calibrated two-view
                geometry, new images posed with it rather than estimating their own), refined by bundle
                adjustment; "fixed" = as "prior" and never refined (the distortion still is).
    frames:     other video frames' tracks (with ``tracks``): each is registered against the 3D points of
                the tracks (``frame_registration``) and lands in ``SparseModel.frame_index`` / ``frame_poses``.
    tracks:     optional point tracks of each keyframe (same order as ``images``): pairs sharing at
                least ``track_min_shared`` tracks and at most ``track_max_gap`` keyframes apart get them as
                matches beside SIFT's, before verification.
    Raises JobError when the camera motion cannot be recovered.
    """
    import pycolmap

    n = len(images)
    if n < min_registered:
        raise JobError(f"need at least {min_registered} keyframes to recover camera motion, got {n}")
    h, w = images[0].shape[:2]
    if any(im.shape[:2] != (h, w) for im in images):
        raise JobError("all keyframes must have the same size")
    pycolmap.logging.minloglevel = 3  # engines never print; failures become JobError

    work = _ascii_workspace()
    try:
        img_dir = work / "images"
        img_dir.mkdir()
        names = [f"{i:06d}.png" for i in range(n)]
        for name, im in zip(names, images):
            cv2.imwrite(str(img_dir / name), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        db = work / "database.db"

        reader = pycolmap.ImageReaderOptions()
        if intrinsics is not None:
            k = np.asarray(intrinsics, np.float64)
            reader.camera_model = "PINHOLE"
            reader.camera_params = ",".join(repr(float(v)) for v in (k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
        else:
            reader.camera_model = camera_model
            reader.default_focal_length_factor = focal_factor if focal_px is None else focal_px / max(h, w)
            if focal_mode not in ("start", "prior", "fixed"):
                raise ValueError(f"focal_mode {focal_mode!r}: use start, prior or fixed")
            if focal_px is not None and focal_mode != "start":
                if camera_model not in _NO_DISTORTION:
                    raise ValueError(f"focal_mode {focal_mode!r} needs one of {', '.join(_NO_DISTORTION)}")
                extra = _NO_DISTORTION[camera_model]
                reader.camera_params = ",".join(repr(float(v)) for v in (focal_px, w / 2, h / 2, *extra))
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = num_threads
        extraction.use_gpu = False
        extraction.sift.max_num_features = max_features
        if sift_peak_threshold is not None:
            extraction.sift.peak_threshold = sift_peak_threshold
        extraction.sift.first_octave = sift_first_octave

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        ctx.progress("sfm: features", 0, n)
        with _cancel_bridge(ctx) as token:
            # The images first, in order: threaded extraction would number them in the order its threads finish,
            # and the mapping (its initial pair, its next image) depends on the numbering, so one video gave
            # different models from call to call.
            pycolmap.Database.open(str(db)).close()
            pycolmap.import_images(db, img_dir, camera_mode=pycolmap.CameraMode.SINGLE, image_names=names,
                                   options=reader)
            pycolmap.extract_features(
                db, img_dir, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                reader_options=reader, extraction_options=extraction,
                device=pycolmap.Device.cpu, cancellation_token=token,
            )
        ctx.progress("sfm: features", n, n)
        timings["features"] = time.perf_counter() - t0

        use_tracks = tracks is not None and any(t is not None and len(t.ids) for t in tracks)
        # Each seeded mapping run verifies its own copy of the matches with its own seed: runs that share one
        # verification draw land in the same basin, a wrong one included (docs/experiments/geometry.md).
        verify_per_run = use_tracks and mapper != "global" and mapping_runs > 1
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = num_threads
        matching.use_gpu = False
        matching.skip_geometric_verification = use_tracks  # verified below, with the tracks
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = write_pairs(work / "sift_pairs.txt", [
            (names[i], names[j]) for i, j in sequential_pairs(n, overlap, quadratic_overlap)])
        t0 = time.perf_counter()
        ctx.progress("sfm: matching", 0, 1)
        with _cancel_bridge(ctx) as token:
            pycolmap.match_image_pairs(
                db, matching_options=matching, pairing_options=pairing,
                device=pycolmap.Device.cpu, cancellation_token=token,
            )
            if use_tracks:
                pairs = add_track_matches(db, names, list(tracks), track_min_shared, track_max_gap)
                pairs_txt = write_pairs(work / "pairs.txt", pairs)
                if not verify_per_run:
                    _verify(db, pairs_txt, seed, min_num_matches, verify_max_error, token)
        ctx.progress("sfm: matching", 1, 1)
        timings["matching"] = time.perf_counter() - t0

        (work / "sparse").mkdir()
        fix_focal = intrinsics is None and focal_px is not None and focal_mode == "fixed"
        t0 = time.perf_counter()
        ctx.progress("sfm: mapping", 0, n)
        runs: list[MappingRun] = []
        with _cancel_bridge(ctx) as token:
            if mapper == "global":
                models = _global_mapping(db, img_dir, work / "sparse", num_threads, seed, min_registered,
                                         min_num_matches, intrinsics is not None, fix_focal)
                runs += [_mapping_run(models, seed)] if models else []
            else:
                def mapping(k: int, threads: int, tick) -> dict:
                    database = db
                    if mapping_runs > 1:  # a copy each: SQLite refuses a second open at the same moment now and then
                        database = work / f"database_{k}.db"
                        shutil.copy(db, database)
                        if verify_per_run:
                            _verify(database, pairs_txt, seed + k, min_num_matches, verify_max_error, token)
                    out = work / "sparse" / str(k)
                    out.mkdir()
                    return _incremental_mapping(
                        database, img_dir, out, tick, token, threads, seed + k, mapping_runs > 1,
                        min_registered, min_num_matches, abs_pose_min_inliers, init_min_inliers, min_tri_angle,
                        abs_pose_max_error, ba_global_ratio, ba_global_max_iterations, intrinsics is not None,
                        fix_focal)

                if mapping_runs > 1:
                    # The first two runs at once, half the threads each: pycolmap releases the GIL, and much of
                    # incremental mapping is one thread, so the pair takes little longer than one run.
                    tick = _progress_ticker(ctx, "sfm: mapping (2 runs)", 2 * n)
                    with ThreadPoolExecutor(2) as pool:
                        pair = [pool.submit(mapping, k, max(1, num_threads // 2), tick) for k in (0, 1)]
                        results = [f.result() for f in pair]
                else:
                    results = [mapping(0, num_threads, _progress_ticker(ctx, "sfm: mapping", n))]
                ctx.check_cancel()
                runs += [_mapping_run(models, seed + k) for k, models in enumerate(results) if models]
                tried = len(results)
                # Then one run at a time while no two agree: with seeds that no run used yet, on one thread, since
                # threaded bundle adjustment does not repeat and a seeded run should.
                while runs and tried < mapping_runs and (all_runs or needs_another_run(runs, mapping_runs)):
                    models = mapping(tried, 1,
                                     _progress_ticker(ctx, f"sfm: mapping (check run {tried + 1})", n))
                    ctx.check_cancel()
                    if models:
                        runs.append(_mapping_run(models, seed + tried))
                    tried += 1
        ctx.progress("sfm: mapping", n, n)
        timings["mapping"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if not runs:
        raise JobError(
            f"could not recover camera motion: no two of the {n} keyframes could be matched with "
            "enough parallax. Is the camera moving (not just rotating) through a textured scene?"
        )
    report = choose(runs)
    model = runs[report.chosen].model
    sparse = _to_sparse_model(model, images, n, min_registered)
    sparse.mapping = report.as_dict()
    sparse.runs = runs if all_runs else []
    if use_tracks and frames:
        t0 = time.perf_counter()
        ctx.progress("sfm: frames", 0, 1)
        of_image = {image_id: int(im.name.split(".")[0]) for image_id, im in model.images.items()}
        ids, xyz = track_points(model, of_image, list(tracks))
        sparse.frame_index, sparse.frame_poses = register_frames(frames, ids, xyz, next(iter(model.cameras.values())))
        ctx.progress("sfm: frames", 1, 1)
        timings["frames"] = time.perf_counter() - t0
    sparse.timings = timings
    return sparse


def _mapping_run(models: dict, seed: int) -> MappingRun:
    """The largest model of one mapping call."""
    rec = max(models.values(), key=lambda r: r.num_reg_images())
    reg = sorted((int(im.name.split(".")[0]), im) for im in rec.images.values() if im.has_pose)
    wfc = np.array([world_from_camera(im) for _, im in reg]).reshape(-1, 4, 4)
    return MappingRun(seed, np.array([i for i, _ in reg], np.int64), wfc,
                      float(rec.compute_mean_reprojection_error()), rec)


def _incremental_mapping(db: Path, img_dir: Path, out: Path, on_image, token: object,
                         num_threads: int, seed: int, seed_ransac: bool, min_registered: int, min_num_matches: int,
                         abs_pose_min_inliers: int, init_min_inliers: int, min_tri_angle: float,
                         abs_pose_max_error: float, ba_global_ratio: float, ba_global_max_iterations: int,
                         fixed_intrinsics: bool, fix_focal: bool = False) -> dict:
    """One pycolmap incremental mapping call; ``on_image()`` is called as each image is registered."""
    import pycolmap

    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = num_threads
    opts.random_seed = seed
    if seed_ransac:  # the pipeline's seed does not reach these; left at -1 each run draws anew
        opts.mapper.random_seed = seed
        opts.triangulation.random_seed = seed
    opts.min_model_size = min_registered
    opts.min_num_matches = min_num_matches
    opts.extract_colors = False
    opts.mapper.abs_pose_min_num_inliers = abs_pose_min_inliers
    opts.mapper.init_min_num_inliers = init_min_inliers
    opts.mapper.filter_min_tri_angle = min_tri_angle
    opts.mapper.abs_pose_max_error = abs_pose_max_error
    opts.ba_global_frames_ratio = ba_global_ratio
    opts.ba_global_points_ratio = ba_global_ratio
    opts.ba_global_max_num_iterations = ba_global_max_iterations
    opts.triangulation.min_angle = min_tri_angle
    if fixed_intrinsics:
        opts.ba_refine_focal_length = False
        opts.ba_refine_principal_point = False
        opts.ba_refine_extra_params = False
        opts.mapper.abs_pose_refine_focal_length = False
        opts.mapper.abs_pose_refine_extra_params = False
    elif fix_focal:
        opts.ba_refine_focal_length = False
        opts.mapper.abs_pose_refine_focal_length = False
    return pycolmap.incremental_mapping(db, img_dir, out, options=opts, next_image_callback=on_image,
                                        cancellation_token=token)


def _verify(db: Path, pairs_txt: Path, seed: int, min_inliers: int, max_error: float, token: object) -> None:
    """COLMAP's geometric verification of the pairs listed in ``pairs_txt``, in ``db``, its RANSAC seeded."""
    import pycolmap

    verify = pycolmap.TwoViewGeometryOptions()
    verify.min_num_inliers = min_inliers
    verify.ransac.max_error = max_error
    verify.ransac.random_seed = seed
    pycolmap.verify_matches(db, pairs_txt, options=verify, cancellation_token=token)


def _progress_ticker(ctx: JobContext, label: str, total: int):
    """A callback for pycolmap's registered images that reports ``label`` progress out of ``total``; safe to
    share between mapping runs in two threads (one report at a time)."""
    count = [0]
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            count[0] += 1
            if ctx.progress_fn is not None and not ctx.cancel_event.is_set():
                ctx.progress_fn(label, min(count[0] + 1, total), total)

    return tick


def _global_mapping(db: Path, img_dir: Path, out: Path, num_threads: int, seed: int, min_registered: int,
                    min_num_matches: int, fixed_intrinsics: bool, fix_focal: bool = False) -> dict:
    import pycolmap

    opts = pycolmap.GlobalPipelineOptions()
    opts.num_threads = num_threads
    opts.random_seed = seed
    opts.min_model_size = min_registered
    opts.min_num_matches = min_num_matches
    opts.mapper.num_threads = num_threads
    opts.mapper.random_seed = seed
    opts.mapper.global_positioning.use_gpu = False
    opts.mapper.bundle_adjustment.ceres.use_gpu = False
    if fixed_intrinsics or fix_focal:
        opts.mapper.bundle_adjustment.refine_focal_length = False
    if fixed_intrinsics:
        opts.mapper.bundle_adjustment.refine_extra_params = False
    return pycolmap.global_mapping(db, img_dir, out, options=opts)


def _to_sparse_model(rec: object, images: list[np.ndarray], n: int, min_registered: int) -> SparseModel:
    """Convert the chosen pycolmap Reconstruction; undistort images if the camera has k1."""
    reg = sorted((int(im.name.split(".")[0]), im) for im in rec.images.values() if im.has_pose)
    if len(reg) < min_registered:
        raise JobError(
            f"could not recover camera motion: is the camera moving? Only {len(reg)} of {n} "
            "keyframes registered"
        )
    cam = next(iter(rec.cameras.values()))
    K = np.asarray(cam.calibration_matrix(), np.float64)
    dist = None
    if cam.model_name == "SIMPLE_RADIAL":
        k1 = float(cam.params[3])
        if abs(k1) > 1e-6:
            dist = np.array([k1, 0.0, 0.0, 0.0])

    index = np.array([i for i, _ in reg], np.int64)
    wfc = np.zeros((len(reg), 4, 4))
    vis: list[np.ndarray] = []
    pid_to_row = {pid: row for row, pid in enumerate(rec.points3D.keys())}
    pts = np.array([p.xyz for p in rec.points3D.values()], np.float64).reshape(-1, 3)
    for row, (_, im) in enumerate(reg):
        wfc[row] = world_from_camera(im)
        ids = [pid_to_row[p.point3D_id] for p in im.points2D if p.has_point3D()]
        vis.append(np.asarray(ids, np.int64))

    out_images = []
    for i in index:
        im = images[i]
        if dist is not None:
            # COLMAP's pixel-centre +0.5 offset cancels: undistortion maps K to the same K.
            im = cv2.undistort(im, _to_opencv_k(K), dist, None, _to_opencv_k(K))
        out_images.append(im)

    centres = wfc[:, :3, 3]
    depth_scale = _median_depth(wfc, pts, vis)
    baseline = float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) if len(centres) else 0.0
    if not np.isfinite(depth_scale) or baseline < 1e-3 * depth_scale:
        raise JobError(
            "could not recover camera motion: the camera barely moves (pure rotation or a static "
            f"shot); {len(reg)} of {n} keyframes registered but the baseline is degenerate"
        )
    return SparseModel(index, K, wfc, pts, vis, out_images)


def world_from_camera(image: object) -> np.ndarray:
    """(4,4) float64 OpenCV world_from_camera of a registered pycolmap Image."""
    m = np.eye(4)
    m[:3, :4] = np.asarray(image.cam_from_world().matrix(), np.float64)
    return np.linalg.inv(m)


def _to_opencv_k(K: np.ndarray) -> np.ndarray:
    """COLMAP (pixel centre at +0.5) -> OpenCV (pixel centre at 0) intrinsics."""
    k = K.copy()
    k[0, 2] -= 0.5
    k[1, 2] -= 0.5
    return k


def _median_depth(wfc: np.ndarray, pts: np.ndarray, vis: list[np.ndarray]) -> float:
    depths = []
    for m, ids in zip(wfc, vis):
        if len(ids):
            cfw = np.linalg.inv(m)
            depths.append((pts[ids] @ cfw[:3, :3].T + cfw[:3, 3])[:, 2])
    if not depths:
        return float("nan")
    return float(np.median(np.concatenate(depths)))
