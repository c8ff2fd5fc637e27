"""Segments of rendered **training** rooms for the OVS fusion: the test-time distribution.

The catalog-model samples of :mod:`core.train.ovs_data` describe isolated objects; the fusion
also has to see what the semantics stage really produces on a room video: imperfect masks,
Cycles lighting, walls / floors / doors / windows, segments that leak across objects. So
each rendered training room (:func:`core.scenegen.suite.training_configs`, furniture from the
training libraries only; found in the bench render cache, never rendered here) goes through
the same path as ``ov3r bench --engine gt-geometry`` (GT cloud subsample + GT cameras + the
video's frames -> classical segments -> compact descriptors -> lifting, plain averaged
descriptors), with several keyframe counts per room (different keyframes, different
segmentations). Per 3D segment it keeps:

- ``clip_inst``: its averaged descriptor (compact encoder: the CLIP3R stand-in);
- ``clip_scene``: the mean full-frame descriptor of the keyframes where it has a mask;
- ``points``: up to ``max_points`` of its points (xyz metres, rgb [0, 1], PCA normals later);
- ``label``: the GT class most of its points have (index into ``TEXT_CLASSES``), kept when
  that class is not "unlabeled" and holds at least ``min_purity`` of the points.

Cached by content hash under ``$OV3R_CACHE/ovs_data/rooms-<hash>/data.npz``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..scenegen.splits import TEST_LIBRARIES, test_model_ids, training_libraries
from .ovs_data import TEXT_CLASSES

__all__ = ["RoomSegments", "build_room_segments", "find_training_rooms", "load_room_segments",
           "prepare_room_segments", "room_segments_of"]

ROOMS_VERSION = 1


@dataclass
class RoomSegments:
    """``points (Np, 6) float16`` all segments' points back to back (``offsets (S+1,)``),
    ``clip_inst`` / ``clip_scene (S, D) float16``, ``label (S,)`` TEXT_CLASSES index, ``purity (S,)``,
    ``room (S,)`` index into ``rooms`` (scene names)."""

    points: np.ndarray
    offsets: np.ndarray
    clip_inst: np.ndarray
    clip_scene: np.ndarray
    label: np.ndarray
    purity: np.ndarray
    room: np.ndarray
    rooms: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def segment_points(self, i: int) -> np.ndarray:
        return self.points[self.offsets[i]:self.offsets[i + 1]]

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, points=self.points, offsets=self.offsets, clip_inst=self.clip_inst, clip_scene=self.clip_scene,
                 label=self.label, purity=self.purity, room=self.room, rooms=np.array(json.dumps(self.rooms)),
                 meta=np.array(json.dumps(self.meta)))
        os.replace(tmp, path)
        return path


def load_room_segments(path: Path) -> RoomSegments:
    z = np.load(path)
    return RoomSegments(z["points"], z["offsets"], z["clip_inst"], z["clip_scene"], z["label"], z["purity"], z["room"],
                        json.loads(str(z["rooms"])), json.loads(str(z["meta"])))


def _check_training_room(info: dict, classes: dict) -> None:
    """Raise AssertionError unless every model of the room comes from a training library."""
    libs = set(info["config"]["libraries"])
    if libs & set(TEST_LIBRARIES) or not libs <= set(training_libraries()):
        raise AssertionError(f"room {info['config']['name']} uses libraries {sorted(libs)}: not a training room")
    test_ids = set(test_model_ids())
    bad = [r["model_id"] for r in classes.get("instances", []) if r.get("model_id") in test_ids
           or (r.get("library") in TEST_LIBRARIES)]
    if bad:
        raise AssertionError(f"room {info['config']['name']} holds test-library models {bad[:3]}")


def find_training_rooms(root: Path | None = None, count: int | None = None) -> list[Path]:
    """Rendered training rooms in the bench cache (scene.json of a ``train_*`` config whose
    libraries are training libraries), sorted by name; ``count``: only the first ``count`` rooms
    of the training sequence (``clip3r_data.room_configs``: what ``suite --training N`` renders),
    so that a run is reproducible whatever else is rendered."""
    from ..scenegen.suite import cache_root

    root = Path(root) if root is not None else cache_root()
    out = []
    if not root.is_dir():
        return out
    wanted = None
    if count is not None:
        from ..scenegen.room_config import config_hash
        from .clip3r_data import Clip3rDataConfig, room_configs

        wanted = {config_hash(c) for c in room_configs(Clip3rDataConfig(rooms=count))}
    train_libs = set(training_libraries())
    for d in sorted(root.iterdir()):
        if wanted is not None and d.name not in wanted:
            continue
        f = d / "scene.json"
        if not f.is_file() or not (d / "gt_cloud.npz").is_file() or not (d / "video.mp4").is_file():
            continue
        cfg = json.loads(f.read_text())["config"]
        libs = set(cfg.get("libraries", []))
        if str(cfg.get("name", "")).startswith("train") and libs and libs <= train_libs:
            out.append(d)
    return sorted(out, key=lambda d: json.loads((d / "scene.json").read_text())["config"]["name"])


def room_segments_of(path: Path, encoder, frames: int, points: int = 200_000, max_points: int = 2048,
                     min_purity: float = 0.5, seed: int = 0, crop: str = "masked") -> dict:
    """One room, one keyframe count -> arrays of its labelled segments (see the module docstring);
    ``crop``: the semantics stage's mask crops (:data:`core.semantics.descriptors.CROPS`)."""
    from ..scenegen.suite import load_scene
    from ..scenegen.taxonomy import CLASSES
    from ..jobs import JobContext
    from ..bench.eval_scene import gt_scene
    from ..semantics.stage import SemanticsSettings, run_semantics

    sc = load_scene(path)
    _check_training_room(sc["info"], sc["classes"])
    scene, images, _, sem = gt_scene(path, frames=frames, points=points, seed=seed)
    st = SemanticsSettings.from_env("compact")
    st.descriptor = "mean"
    st.crop = crop
    cap: dict = {}
    run_semantics(scene, images, JobContext(), st, encoder=encoder, capture=cap)
    S = len(scene.segments)
    full = np.asarray(encoder.encode(np.stack([np.asarray(im) for im in images]), None), np.float32)
    seg = scene.segment_id
    rng = np.random.default_rng([seed, frames, 5])
    out: dict = {"points": [], "clip_inst": [], "clip_scene": [], "label": [], "purity": []}
    mask_seg = cap["lift"].mask_segment
    for s in range(S):
        idx = np.flatnonzero(seg == s)
        cnt = np.bincount(sem[idx], minlength=len(CLASSES))
        c = int(cnt.argmax())
        purity = cnt[c] / max(len(idx), 1)
        if c == 0 or purity < min_purity:
            continue
        fr = [f for f, ms in enumerate(mask_seg) if s in ms]
        cs = full[fr].mean(0) if fr else full.mean(0)
        if len(idx) > max_points:
            idx = np.sort(rng.choice(idx, max_points, replace=False))
        p = np.concatenate([scene.points[idx], scene.colors[idx].astype(np.float32) / 255.0], 1)
        out["points"].append(p.astype(np.float16))
        out["clip_inst"].append(scene.segments.descriptor[s])
        out["clip_scene"].append(cs / max(np.linalg.norm(cs), 1e-12))
        out["label"].append(TEXT_CLASSES.index(CLASSES[c]))
        out["purity"].append(purity)
    return out


def _as_segments(o: dict, dim: int) -> RoomSegments:
    """:func:`room_segments_of`'s lists -> one room's :class:`RoomSegments` (room index 0)."""
    n = len(o["label"])
    return RoomSegments(np.concatenate(o["points"]) if n else np.zeros((0, 6), np.float16),
                        np.cumsum([0] + [len(p) for p in o["points"]]).astype(np.int64),
                        np.asarray(o["clip_inst"], np.float16).reshape(-1, dim),
                        np.asarray(o["clip_scene"], np.float16).reshape(-1, dim),
                        np.asarray(o["label"], np.int64), np.asarray(o["purity"], np.float32), np.zeros(n, np.int64))


def _cached_room_segments(path: Path, encoder, frames: int, points: int, max_points: int, min_purity: float,
                          encoder_id: str | None, crop: str = "masked") -> RoomSegments:
    """One room at one keyframe count, cached on its own (render hash, keyframes, encoder weights'
    hash ``encoder_id``, settings), so adding rendered rooms does not recompute the others (~10 s
    a room and keyframe count on a free machine). ``encoder_id`` None: no cache."""
    from .ovs_data import _cache_root, with_crop

    if encoder_id is None:
        return _as_segments(room_segments_of(path, encoder, frames, points, max_points, min_purity, crop=crop),
                            int(encoder.dim))
    spec = with_crop({"v": ROOMS_VERSION, "format": 2, "room": Path(path).name, "frames": int(frames),
                      "points": points, "max_points": max_points, "min_purity": min_purity, "encoder": encoder_id},
                     crop)
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    f = _cache_root() / "room-segments" / f"{key}.npz"
    if f.exists():
        return load_room_segments(f)
    seg = _as_segments(room_segments_of(path, encoder, frames, points, max_points, min_purity, crop=crop),
                       int(encoder.dim))
    seg.save(f)
    return seg


def build_room_segments(rooms: Sequence[Path], encoder, frames: Sequence[int] = (12, 20), points: int = 200_000,
                        max_points: int = 2048, min_purity: float = 0.5, log: Callable[[str], None] = print,
                        encoder_id: str | None = None, crop: str = "masked") -> RoomSegments:
    """Labelled segments of ``rooms``; with ``encoder_id`` (the encoder weights' hash) each room
    is cached on its own (see :func:`_cached_room_segments`)."""
    parts: list[RoomSegments] = []
    room: list[np.ndarray] = []
    names = []
    t0 = time.time()
    for r, path in enumerate(rooms):
        names.append(json.loads((Path(path) / "scene.json").read_text())["config"]["name"])
        for F in frames:
            part = _cached_room_segments(Path(path), encoder, F, points, max_points, min_purity, encoder_id, crop)
            parts.append(part)
            room.append(np.full(len(part), r, np.int64))
            log(f"room segments: {names[-1]} ({F} keyframes): {len(part)} labelled segments "
                f"({time.time() - t0:.0f}s)")
    if not parts:
        parts = [_as_segments({"points": [], "clip_inst": [], "clip_scene": [], "label": [], "purity": []},
                              int(encoder.dim))]
        room = [np.zeros(0, np.int64)]
    return RoomSegments(np.concatenate([p.points for p in parts]),
                        np.cumsum(np.concatenate([[0]] + [np.diff(p.offsets) for p in parts])).astype(np.int64),
                        np.concatenate([p.clip_inst for p in parts]), np.concatenate([p.clip_scene for p in parts]),
                        np.concatenate([p.label for p in parts]), np.concatenate([p.purity for p in parts]),
                        np.concatenate(room), names,
                        {"version": ROOMS_VERSION, "frames": list(frames), "points": points, "min_purity": min_purity,
                         "seconds": round(time.time() - t0, 1), "crop": crop,
                         "clip_slot": "compact image encoder (stand-in for CLIP3R's F_oCLIP)"})


def prepare_room_segments(frames: Sequence[int] = (12, 20), compact_weights: str | Path | None = None,
                          root: Path | None = None, log: Callable[[str], None] = print,
                          crop: str = "masked", count: int | None = None) -> Path | None:
    """Cached room segments of every rendered training room, or of the first ``count`` of the
    training sequence (None when none is rendered)."""
    from ..models.compact import ImageEncoder
    from ..hashing import file_sha256
    from .ovs_data import _cache_root, _default_weights, with_crop

    rooms = find_training_rooms(root, count)
    if not rooms:
        return None
    w = Path(compact_weights) if compact_weights else _default_weights()
    spec = with_crop({"v": ROOMS_VERSION, "rooms": [r.name for r in rooms], "frames": list(frames),
                      "encoder": file_sha256(w)}, crop)
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    out = _cache_root() / f"rooms-{key}" / "data.npz"
    if out.exists():
        return out
    enc = ImageEncoder.from_pretrained(w, device="cpu")
    data = build_room_segments(rooms, enc, frames, log=log, encoder_id=file_sha256(w), crop=crop)
    data.save(out)
    log(f"wrote {out} ({len(data)} segments from {len(rooms)} rooms)")
    return out
