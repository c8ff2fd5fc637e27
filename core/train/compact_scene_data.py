"""In-scene training crops for the compact image encoder, cut from rendered training rooms.

The object views of :mod:`core.train.compact_data` are whole models rendered alone; in a
reconstruction the encoder sees parts of objects, walls and floors in a lit room, through a
segmenter's masks. These crops close that gap: every GT instance visible in a frame of a
rendered training room (:func:`core.scenegen.suite.training_configs`, training libraries only)
gives a crop around its mask with the real context kept, and large instances (walls, floors,
big furniture) also give fragments (a random window of the mask), like a segmenter's pieces.
Structure instances (wall, floor, ceiling, door, window) are labelled with their class.

Cached as ``<cache>/compact_data/scene-<hash>.npz``: ``rgb (N,R,R,3) uint8``, ``mask (N,R,R)
bool`` (crops padded to squares, resized to R), ``obj (N,) int32`` into ``objects`` (JSON:
one entry per (room, instance): id, name, category, library, class).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..scenegen.splits import TEST_LIBRARIES, test_model_ids
from ..cache import cache_dir

__all__ = ["SceneCrops", "build_scene_crops", "crops_from_scene"]

VERSION = 1


@dataclass
class SceneCrops:
    rgb: np.ndarray  # (N,R,R,3) uint8
    mask: np.ndarray  # (N,R,R) bool
    obj: np.ndarray  # (N,) int32
    objects: List[Dict]


def _square(img: np.ndarray, m: np.ndarray, box, res: int):
    """Crop ``box`` (y0,y1,x0,x1, may leave the image) as a square padded with grey, resized to ``res``."""
    import cv2

    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0
    s = max(h, w)
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    Y0, X0 = cy - s // 2, cx - s // 2
    H, W = m.shape
    out = np.full((s, s, 3), 128, np.uint8)
    om = np.zeros((s, s), bool)
    sy0, sx0 = max(0, Y0), max(0, X0)
    sy1, sx1 = min(H, Y0 + s), min(W, X0 + s)
    out[sy0 - Y0:sy1 - Y0, sx0 - X0:sx1 - X0] = img[sy0:sy1, sx0:sx1]
    om[sy0 - Y0:sy1 - Y0, sx0 - X0:sx1 - X0] = m[sy0:sy1, sx0:sx1]
    rgb = cv2.resize(out, (res, res), interpolation=cv2.INTER_AREA)
    mk = cv2.resize(om.astype(np.uint8), (res, res), interpolation=cv2.INTER_NEAREST).astype(bool)
    return rgb, mk


def crops_from_scene(scene_dir: Path, res: int = 128, min_pixels: int = 300, fragments: int = 2,
                     seed: int = 0, test_ids: Optional[set] = None):
    """-> (rgb (n,R,R,3), mask (n,R,R), local instance key per crop, {key: object entry})."""
    from ..bench.eval_segments import video_frames

    scene_dir = Path(scene_dir)
    info = json.loads((scene_dir / "scene.json").read_text())
    libs = set(info["config"]["libraries"])
    if libs & set(TEST_LIBRARIES):
        raise ValueError(f"{scene_dir} uses a test library ({sorted(libs & set(TEST_LIBRARIES))}): not for training")
    table = {r["instance_id"]: r for r in json.loads((scene_dir / "classes.json").read_text())["instances"]}
    test_ids = test_ids if test_ids is not None else set(test_model_ids())
    bad = {r["model_id"] for r in table.values() if r.get("model_id")} & test_ids
    if bad:
        raise ValueError(f"{scene_dir} holds test-library models {sorted(bad)[:3]}")
    with np.load(scene_dir / "labels.npz") as z:
        inst = z["instance"]
    frames = video_frames(scene_dir / "video.mp4", range(len(inst)))
    rng = np.random.default_rng([seed, int(info["config"]["seed"])])
    rgbs, masks, keys = [], [], []
    room = info["config"]["name"]
    for f in range(len(inst)):
        img, lab = frames[f], inst[f]
        ids, counts = np.unique(lab, return_counts=True)
        for iid, n in zip(ids, counts):
            rec = table.get(int(iid))
            if rec is None or n < min_pixels or rec.get("class") in (None, "unlabeled"):
                continue
            m = lab == iid
            ys, xs = np.nonzero(m)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            mg = rng.uniform(0.05, 0.3)
            dy, dx = int(mg * (y1 - y0)), int(mg * (x1 - x0))
            boxes = [(y0 - dy, y1 + dy, x0 - dx, x1 + dx)]
            if n > 8 * min_pixels:  # pieces of big instances, as a segmenter cuts them
                for _ in range(fragments):
                    h = int(rng.uniform(0.3, 0.7) * (y1 - y0)) + 2
                    w = int(rng.uniform(0.3, 0.7) * (x1 - x0)) + 2
                    cy, cx = ys[int(rng.integers(len(ys)))], xs[int(rng.integers(len(xs)))]
                    boxes.append((cy - h // 2, cy + h // 2, cx - w // 2, cx + w // 2))
            for k, b in enumerate(boxes):
                mb = np.zeros_like(m)
                mb[max(0, b[0]):max(0, b[1]), max(0, b[2]):max(0, b[3])] = True
                sub = m & mb if k else m
                if sub.sum() < min_pixels // 2:
                    continue
                rgb, mk = _square(img, sub, b, res)
                rgbs.append(rgb)
                masks.append(mk)
                keys.append(f"{room}/{int(iid)}")
    objects = {}
    for key in dict.fromkeys(keys):
        rec = table[int(key.split("/")[1])]
        name = rec["class"] if rec.get("model_id") is None else rec["name"]
        objects[key] = {"id": f"scene:{key}", "name": name.replace("_", " "), "category": rec["class"],
                        "library": rec.get("library") or "structure", "class": rec["class"]}
    return (np.stack(rgbs) if rgbs else np.zeros((0, res, res, 3), np.uint8),
            np.stack(masks) if masks else np.zeros((0, res, res), bool), keys, objects)


def _cache_path(scene_dirs: Sequence[Path], res: int, min_pixels: int, fragments: int, seed: int) -> Path:
    rooms = [json.loads((Path(d) / "scene.json").read_text())["hash"] for d in scene_dirs]  # config hashes
    h = hashlib.sha256(json.dumps([VERSION, rooms, res, min_pixels, fragments, seed]).encode()).hexdigest()[:16]
    return cache_dir("compact_data") / f"scene-{h}.npz"


def build_scene_crops(scene_dirs: Sequence[Path], res: int = 128, min_pixels: int = 300, fragments: int = 2,
                      seed: int = 0, log=None) -> SceneCrops:
    """Crops of every rendered room in ``scene_dirs`` (cached by their config hashes + parameters)."""
    path = _cache_path(scene_dirs, res, min_pixels, fragments, seed)
    if path.exists():
        with np.load(path) as z:
            return SceneCrops(z["rgb"], z["mask"], z["obj"], json.loads(str(z["objects"])))
    test_ids = set(test_model_ids())
    rgb, mask, obj, objects = [], [], [], []
    for d in scene_dirs:
        r, m, keys, objs = crops_from_scene(Path(d), res, min_pixels, fragments, seed, test_ids)
        index = {}
        for k, entry in objs.items():
            index[k] = len(objects)
            objects.append(entry)
        rgb.append(r)
        mask.append(m)
        obj.append(np.array([index[k] for k in keys], np.int32))
        if log:
            log(f"scene crops: {Path(d).name[:12]} {len(keys)} crops, {len(objs)} instances")
    out = SceneCrops(np.concatenate(rgb), np.concatenate(mask), np.concatenate(obj), objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, rgb=out.rgb, mask=out.mask, obj=out.obj, objects=json.dumps(objects))
    os.replace(tmp, path)
    return out
