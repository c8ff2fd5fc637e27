"""SfM settings side by side on rendered rooms: keyframes + SfM only (no dense stage), every video
frame placed as the pipeline does, scored against the ground truth.

``python -m core.bench.sfm_variants --scenes hard_dev --variants '{"base": {}, "global": {"mapper": "global"}}'``

A variant is keyword arguments of :func:`core.geometry.sfm.colmap_sfm.run_sfm` over the engine's
defaults (``SfmSettings().sfm_kwargs()``; ``{}`` is the shipped default), plus an optional
``"keyframes"`` dict of :class:`core.video.KeyframeSettings` fields (``"tracks"``: a dict of
:class:`core.video.tracks.TrackSettings` fields), ``"focal_retry": false`` (no second mapping with the
lines' focal length when the seeded solves disagree, which the engine's default does), ``"focal_from_lines":
true`` (the vanishing points' focal
length handed to ``run_sfm`` as ``focal_px``; its ``"focal_mode"``: "start", "prior" or "fixed"), ``"intrinsics": "true"`` (the render's own intrinsics, as a user who knows them
gives them), ``"use_tracks": false`` to
leave the point tracks out and ``"register_frames": false`` to interpolate every frame between keyframes. Prints one JSON line per
(scene, variant): placed fraction, ATE over all frames and over placed frames (cm), keyframes,
registered keyframes, seconds. Choose on development rooms only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np

from ..geometry.frame_placement import place_frames
from ..geometry.sfm.colmap_sfm import run_sfm
from ..geometry.sfm.engine import SfmSettings
from ..geometry.sfm.focal_retry import run_sfm_with_focal_retry
from ..geometry.sfm.vanishing_focal import vanishing_focal
from ..jobs import JobContext
from ..scene.cameras import Cameras
from ..scenegen.suite import load_scene
from ..video import KeyframeSettings, iter_frames, probe_video, select_keyframes
from ..video.tracks import TrackSettings
from .peer import score_path
from .run import resolve_scenes


def run_variant(video, gt_world_from_camera: np.ndarray, variant: Dict, max_side: int = 640,
                gt_intrinsics: Optional[np.ndarray] = None) -> Dict:
    """Score one SfM variant on one video (a failed SfM is a row with its error); ``gt_intrinsics`` (3,3) at the
    video's size, for a variant with ``"intrinsics": "true"``."""
    variant = dict(variant)
    known = None
    if variant.pop("intrinsics", None) == "true":
        if gt_intrinsics is None:
            raise ValueError("the variant asks for the true intrinsics and the scene has none")
        known = np.asarray(gt_intrinsics, np.float64).reshape(-1, 3, 3)[0]
    kf = dict(variant.pop("keyframes", {}))
    if isinstance(kf.get("tracks"), dict):
        kf["tracks"] = TrackSettings(**kf["tracks"])
    kf_settings = KeyframeSettings(**kf)
    stamps: list[float] = []

    def frames():
        for f in iter_frames(video, max_side):
            stamps.append(f.timestamp)
            yield f

    t0 = time.perf_counter()
    try:
        kfs, _ = select_keyframes(frames(), kf_settings)
        tracks = [k.tracks for k in kfs] if variant.pop("use_tracks", True) else None
        variant_frames = variant.pop("register_frames", True) and tracks is not None
        frames = [f for k in kfs for f in k.tracked_frames()] if variant_frames else None
        focal_px = None
        use_lines = variant.pop("focal_from_lines", False)
        # as the engine: the retry with the lines' focal length (focal_retry) when they are only a check
        retry = variant.pop("focal_retry", SfmSettings().focal_retry) and not use_lines and known is None
        if use_lines or retry:
            focal_px, _ = vanishing_focal([k.image for k in kfs])
        if known is not None:  # the renders' K is at the video's size; the keyframes may be smaller
            info = probe_video(video)
            s = max(kfs[0].image.shape[:2]) / max(info.width, info.height)
            known = known * np.array([[s], [s], [1.0]])
        kwargs = dict(intrinsics=known, tracks=tracks, frames=frames, **{**SfmSettings().sfm_kwargs(), **variant})
        if retry:
            sparse, retried = run_sfm_with_focal_retry([k.image for k in kfs], JobContext(), focal_px, **kwargs)
        else:
            sparse, retried = run_sfm([k.image for k in kfs], JobContext(), focal_px=focal_px, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - a variant that fails is a result
        return {"error": str(exc)[:160], "s": time.perf_counter() - t0}
    reg = [kfs[i] for i in sparse.registered]
    cams = Cameras(np.repeat(sparse.K[None].astype(np.float32), len(reg), 0),
                   sparse.world_from_camera.astype(np.float32), np.array([k.timestamp for k in reg]),
                   np.array([k.index for k in reg], np.int32), (1, 1))
    path = place_frames(np.asarray(stamps), np.array([k.index for k in kfs]), cams,
                        {"index": sparse.frame_index, "world_from_camera": sparse.frame_poses})
    return {**score_path(path, gt_world_from_camera), "keyframes": len(kfs), "registered": len(reg),
            "mapping_runs": len(sparse.mapping.get("runs", ())), "agreed": sparse.mapping.get("agreed"),
            "focal": float(sparse.K[0, 0]), "focal_from_lines": focal_px, "focal_retry": retried,
            "s": time.perf_counter() - t0}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.sfm_variants", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", nargs="+", default=["hard_dev"])
    p.add_argument("--variants", required=True, help="JSON object: name -> run_sfm keyword arguments")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each (scene, variant): pycolmap's threaded mapping is not deterministic")
    a = p.parse_args(argv)
    variants = json.loads(a.variants)
    for folder in resolve_scenes(a.scenes):
        sc = load_scene(folder)
        for name, v in variants.items():
            for run in range(a.repeat):
                row = run_variant(sc["video"], sc["cameras"]["world_from_camera"], v,
                                  gt_intrinsics=sc["cameras"].get("intrinsics"))
                row = {"scene": sc["info"]["config"]["name"], "variant": name, "run": run, **row}
                print(json.dumps({k: round(x, 3) if isinstance(x, float) else x for k, x in row.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
