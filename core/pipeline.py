"""Video -> SemanticScene: decode, pick keyframes, run a geometry engine, package the result."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .geometry.engine import Reconstruction
from .hashing import file_sha256
from .geometry.frame_placement import coverage_report, describe_unplaced, place_frames
from .jobs import JobContext, JobError
from .scene import FORMAT_VERSION, SemanticScene
from .video import KeyframeSettings, iter_frames, probe_video, select_keyframes


#: below this fraction of the video placed, the result is an error (it would mislead more than help)
MIN_COVERAGE = 0.10
#: below this, the result comes with a warning naming the frames that could not be placed
WARN_COVERAGE = 0.90
#: a self-calibrated focal length this far (relative) from the vanishing points' is a warning: on the validation
#: walks it flags the one whose self-calibration went wrong (21 % from the lines', 17 % from the truth, its path
#: 56 cm off) and none of the others (<= 6 %)
WARN_FOCAL_DISAGREEMENT = 0.10


@dataclass
class ReconstructSettings:
    engine: str = "sfm"
    engine_settings: dict[str, Any] = field(default_factory=dict)  # fields of the engine's settings dataclass
    max_frames: int | None = None  # decode at most this many frames
    max_side: int = 640  # resolution cap of the working images (longest side, px)
    keyframes: KeyframeSettings = field(default_factory=KeyframeSettings)
    # Known pinhole intrinsics (fx, fy, cx, cy) at the video's full resolution; None = estimate.
    intrinsics: tuple[float, float, float, float] | None = None
    # image encoder of the semantics stage: "compact", "openclip" or None
    # (no segments); default "compact" when its shipped weights exist. See core.semantics.stage.
    semantics: str | None = field(default_factory=lambda: _default_semantics())


def _default_semantics() -> str | None:
    from .semantics.stage import compact_weights_available

    return "compact" if compact_weights_available() else None


def _scaled_intrinsics(settings: ReconstructSettings, full: tuple[int, int], work: tuple[int, int]) -> np.ndarray | None:
    if settings.intrinsics is None:
        return None
    fx, fy, cx, cy = settings.intrinsics
    sx, sy = work[0] / full[0], work[1] / full[1]
    return np.array([[fx * sx, 0, cx * sx], [0, fy * sy, cy * sy], [0, 0, 1]], np.float64)


def _field_of_view(width: float, focal: float) -> float:
    """The horizontal field of view in degrees of images ``width`` px wide: the same at any resolution."""
    return float(np.degrees(2 * np.arctan2(width, 2 * focal)))


def path_doubts(metadata: dict[str, Any]) -> list[str]:
    """Warnings about the camera path that the engine's own records raise (``metadata["mapping"]``,
    ``metadata["focal_from_lines"]``): seeded mapping runs that never agreed, a self-calibrated focal length
    far from the one the room's vanishing points give."""
    out = []
    mapping = metadata.get("mapping") or {}
    if len(mapping.get("runs", ())) > 1 and not mapping.get("agreed"):
        out.append(f"the camera path is uncertain: {len(mapping['runs'])} solves of the video disagreed "
                   "(too little texture or parallax to pin it down)")
    focal = metadata.get("focal_from_lines") or {}
    if focal.get("disagreement", 0.0) > WARN_FOCAL_DISAGREEMENT:
        found, lines = (_field_of_view(focal["width"], focal[k]) for k in ("self_calibrated", "focal"))
        out.append(f"the camera's focal length is uncertain: the self-calibration found a {found:.0f} degree field of "
                   f"view, the room's straight lines {lines:.0f} degrees (the path and the cloud's proportions may be "
                   "off; give the intrinsics if they are known: --intrinsics FX FY CX CY)")
    return out


def scene_from_reconstruction(rec: Reconstruction, metadata: dict[str, Any]) -> SemanticScene:
    scene = SemanticScene.from_points(rec.points, rec.colors, rec.confidence, rec.frame_id, rec.cameras, metadata)
    return scene.validate()


def reconstruct_video(video: str | Path, ctx: JobContext, settings: ReconstructSettings | None = None) -> SemanticScene:
    """Run the whole geometry pipeline on one video file (no semantics yet)."""
    from .geometry import get_engine

    settings = settings or ReconstructSettings()
    video = Path(video)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    info = probe_video(video)
    total = info.frame_count or max(1, int(round(info.duration * info.fps)))
    if settings.max_frames:
        total = min(total, settings.max_frames)
    truncated: list[str] = []

    def on_frame(n: int) -> None:
        if n % 10 == 0 or n == total:
            ctx.progress("decode + keyframes", min(n, total), max(total, n))

    stamps: list[float] = []  # every decoded frame's time: each one gets a camera

    def frames():
        for frame in iter_frames(video, settings.max_side, settings.max_frames, on_truncated=truncated.append):
            stamps.append(frame.timestamp)
            yield frame

    keyframes, n_frames = select_keyframes(frames(), settings.keyframes, on_frame)
    ctx.progress("decode + keyframes", n_frames, n_frames)
    timings["decode_keyframes"] = time.perf_counter() - t0

    h, w = keyframes[0].image.shape[:2]
    try:
        engine = get_engine(settings.engine, **settings.engine_settings)
    except (ValueError, TypeError) as exc:
        raise JobError(str(exc)) from None
    metadata: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "producer": f"ov3r {__version__}",
        "engine": engine.name,
        "models": {},
        "video": {
            "name": video.name,
            "path": str(video.resolve()),
            "sha256": file_sha256(video),
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "rotation": info.rotation,
            "frames_read": n_frames,
            "truncated": truncated[0] if truncated else None,
        },
        "settings": asdict(settings),
        "keyframes": len(keyframes),
        "text_space": None,
    }

    def partial(scene: object) -> None:
        if isinstance(scene, SemanticScene):
            scene.metadata.update({k: v for k, v in metadata.items() if k not in ("format", "version")})
            scene.metadata["partial"] = True
        ctx.partial(scene)

    engine_ctx = JobContext(ctx.progress_fn, partial, ctx.cancel_event)
    t1 = time.perf_counter()
    rec = engine.reconstruct(keyframes, engine_ctx, intrinsics=_scaled_intrinsics(settings, (info.width, info.height), (w, h)))
    timings["engine"] = time.perf_counter() - t1
    if rec.points.shape[0] == 0:
        raise JobError("the reconstruction produced no points: the video may be too dark, blurry or textureless")
    timings.update({f"engine.{k}": v for k, v in rec.extras.get("timings", {}).items()})
    timings["total"] = time.perf_counter() - t0
    metadata["timings"] = timings
    # the engine may keep fewer of them as the scene's cameras (the sfm engine's views)
    registered = len(rec.extras.get("registered_keyframes", rec.cameras.frame_index))
    metadata["registered_keyframes"] = registered
    if rec.extras.get("mapping"):
        metadata["mapping"] = rec.extras["mapping"]
    if rec.extras.get("focal_from_lines"):
        metadata["focal_from_lines"] = rec.extras["focal_from_lines"]
    if "filled" in rec.extras:
        metadata["filled"] = rec.extras["filled"]
    if rec.extras.get("room_axes") is not None:
        metadata["room_axes"] = rec.extras["room_axes"]
    path = place_frames(np.asarray(stamps), np.array([kf.index for kf in keyframes]), rec.cameras,
                        rec.extras.get("frame_poses"))
    metadata["coverage"] = coverage = coverage_report(path, {kf.index: kf.image for kf in keyframes})
    if coverage["fraction"] < MIN_COVERAGE:
        raise JobError(f"only {100 * coverage['fraction']:.0f}% of the video could be placed "
                       f"({registered} of {len(keyframes)} keyframes registered): {describe_unplaced(coverage)}")
    if coverage["fraction"] < WARN_COVERAGE:
        coverage["warning"] = (f"only {100 * coverage['fraction']:.0f}% of the video was placed: "
                               f"{describe_unplaced(coverage)}")
    doubts = path_doubts(metadata)
    if doubts:
        coverage["warning"] = "; ".join(([coverage["warning"]] if coverage.get("warning") else []) + doubts)
    scene = scene_from_reconstruction(rec, metadata)
    scene.frame_path = path
    if settings.semantics:  # 2D segments -> 3D segments with descriptors
        from .semantics.stage import SemanticsSettings, run_semantics

        by_index = {kf.index: kf.image for kf in keyframes}
        images = [by_index[int(i)] for i in rec.cameras.frame_index]
        try:
            run_semantics(scene, images, ctx, SemanticsSettings.from_env(settings.semantics),
                          spacing=rec.extras.get("voxel_size"))
        except (ValueError, FileNotFoundError, PermissionError) as exc:
            raise JobError(f"semantics: {exc}") from None
        timings["total"] = time.perf_counter() - t0
    return scene
