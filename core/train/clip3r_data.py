"""Training data for CLIP3R: rendered training rooms -> windows of views with GT point maps.

Rooms come from :func:`core.scenegen.suite.training_configs` (training libraries only; the
test library is refused), rendered once at low resolution by :func:`core.scenegen.suite.cached_scene`
(Cycles, cached by config hash). Each room is then *prepared* once and cached by content
hash under ``$OV3R_CACHE/clip3r_data/rooms/<hash>.npz`` (``~/.cache/ov3r`` by default; a
dataset is ``clip3r_data/<hash>/meta.json`` listing its rooms):

- frames decoded from the room's ``video.mp4`` (the H.264 frames a user's video would give),
  depth (``depth.npz``), instance masks (``labels.npz``), cameras, all fitted to the
  network size (:func:`core.models.clip3r.preprocess.fit_image`: resize to cover + centre crop);
- object-level F_oCLIP per frame: every GT instance mask of the frame -> masked crop ->
  the shipped compact image encoder (``core.models.compact``, 384-d, the stand-in for CLIP
  until CLIP weights are given) -> painted back onto the patch grid
  (:func:`core.models.clip3r.preprocess.patch_features`); the per-segment table and the
  per-pixel segment map are kept for the L_oCLIP targets.

Windows (``Clip3rWindows``) are built on the fly from a prepared room (cheap numpy):

- ``"i2p"``: ``L`` frames ``start + stride * i`` (keyframe = the middle one); GT points of
  every view in the *keyframe's camera frame* (metres; the loss normalises the scale),
  validity, F_oCLIP, and per support-view patch the fraction of its points the keyframe sees
  (the retrieval scorer's target).
- ``"l2w"``: ``R`` scene frames + ``K`` keyframes to register, near each other in the walk.
  World frame = the camera of a random frame of the room (as in a stream, the scene frame is
  wherever the first window put it), unit = the mean depth of the scene frames. Inputs: the
  scene frames' GT world points, the keyframes' GT *camera-frame* points times a random scale
  (I2P's outputs have no fixed scale); targets: everyone's world points; per-pixel segment
  indices into a per-sample descriptor table for L_oCLIP.

Randomness of an item depends only on ``(seed, epoch, index)``, so a resumed training sees
exactly the batches it would have seen (bit-exact continuation).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..scenegen.room_config import RoomConfig, config_hash
from ..scenegen.suite import training_rooms
from ..cache import cache_dir
from ..models.clip3r.preprocess import fit_image, fit_intrinsics, patch_features, pixel_rays, to_input

__all__ = [
    "DATA_VERSION",
    "Clip3rDataConfig",
    "Clip3rWindows",
    "PreparedRoom",
    "build_dataset",
    "collate",
    "data_dir",
    "load_prepared",
    "prepare_room",
    "room_configs",
]

DATA_VERSION = 1


@dataclass(frozen=True)
class Clip3rDataConfig:
    """What to render and how to cut it. The defaults are sized for the ``small`` config on a
    2-core CPU: 12 rooms x 40 frames at 224x168 (Cycles 8 samples: about a second a frame
    with setup, about 12 minutes in all), fitted to 160x224 (4:3 video -> 10 x 14 patches)."""

    rooms: int = 12
    seed: int = 0
    width: int = 224
    height: int = 168
    frames: int = 40
    fps: float = 4.0  # 40 frames = the 10 s walk of a test video, one frame every ~4 test frames
    samples: int = 8
    gt_points: int = 20_000  # the GT cloud is not used for training: keep its sampling cheap
    img_size: tuple = (160, 224)  # network (H, W)
    patch_size: int = 16
    min_segment_px: int = 24  # smaller instance masks get no descriptor
    room_overrides: dict = field(default_factory=dict)  # extra RoomConfig fields (tests)

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["img_size"] = list(self.img_size)
        return d


def room_configs(dc: Clip3rDataConfig) -> list[RoomConfig]:
    """The first ``dc.rooms`` training rooms of seed ``dc.seed`` whose layout generates
    (deterministic: rooms without a valid layout are skipped)."""
    kw = dict(width=dc.width, height=dc.height, frames=dc.frames, fps=dc.fps, samples=dc.samples,
              gt_points=dc.gt_points)
    return training_rooms(dc.rooms, dc.seed, **{**kw, **dc.room_overrides})


def _cache_root() -> Path:
    return cache_dir("clip3r_data")


def _encoder_id(encoder) -> str:
    """A content id of the F_oCLIP encoder (weights file hash when known)."""
    path = getattr(encoder, "_ov3r_path", None)
    if path is not None and Path(path).is_file():
        from ..hashing import file_sha256

        return file_sha256(path)[:16]
    return str(getattr(encoder, "cache_id", type(encoder).__name__))


def data_key(dc: Clip3rDataConfig, cfgs: Sequence[RoomConfig], encoder_id: str) -> str:
    blob = json.dumps({"v": DATA_VERSION, "data": dc.to_dict(), "rooms": [config_hash(c) for c in cfgs],
                       "encoder": encoder_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_dir(dc: Clip3rDataConfig, encoder_id: str, root: Path | None = None) -> Path:
    return (Path(root) if root is not None else _cache_root()) / data_key(dc, room_configs(dc), encoder_id)


def room_key(dc: Clip3rDataConfig, cfg: RoomConfig, encoder_id: str) -> str:
    """Content key of one prepared room (shared by datasets that differ only in their room count)."""
    blob = json.dumps({"v": DATA_VERSION, "room": config_hash(cfg), "img_size": list(dc.img_size),
                       "patch": dc.patch_size, "min_px": dc.min_segment_px, "encoder": encoder_id}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------ prepare

@dataclass
class PreparedRoom:
    """One room at the network size. ``F`` frames of ``(h, w)``; ``N`` patches."""

    name: str
    images: np.ndarray  # (F, h, w, 3) uint8
    depth: np.ndarray  # (F, h, w) float32 metres (0 = none)
    K: np.ndarray  # (3, 3) float64, network pixels
    world_from_camera: np.ndarray  # (F, 4, 4) float64
    seg: np.ndarray  # (F, h, w) uint8: 0 = none, s = segment s of the frame
    seg_table: np.ndarray  # (T, d) float16 descriptors of all segments of all frames
    seg_offset: np.ndarray  # (F + 1,) int64: frame f's segment s is row seg_offset[f] + s - 1
    patch_clip: np.ndarray  # (F, N, d) float16 F_oCLIP
    patch_valid: np.ndarray  # (F, N) bool

    @property
    def frames(self) -> int:
        return int(self.images.shape[0])

    def save(self, path: Path) -> Path:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, name=np.array(self.name), images=self.images, depth=self.depth.astype(np.float16),
                 K=self.K, world_from_camera=self.world_from_camera, seg=self.seg, seg_table=self.seg_table,
                 seg_offset=self.seg_offset, patch_clip=self.patch_clip, patch_valid=self.patch_valid)
        os.replace(tmp, path)
        return path

    @staticmethod
    def load(path: Path) -> PreparedRoom:
        with np.load(path) as z:
            return PreparedRoom(str(z["name"]), z["images"], z["depth"].astype(np.float32), z["K"],
                                z["world_from_camera"], z["seg"], z["seg_table"], z["seg_offset"], z["patch_clip"],
                                z["patch_valid"])


def _decode_video(path: Path, n: int) -> np.ndarray:
    from ..video import iter_frames

    frames = [f.image for _, f in zip(range(n), iter_frames(path, max_side=None))]
    return np.stack(frames)


def prepare_room(scene: Path, encoder, img_size: Sequence[int], patch_size: int = 16,
                 min_segment_px: int = 24) -> PreparedRoom:
    """A rendered room folder -> :class:`PreparedRoom` (F_oCLIP from ``encoder`` on GT masks)."""
    from ..semantics.descriptors import mask_descriptors

    scene = Path(scene)
    info = json.loads((scene / "scene.json").read_text())
    with np.load(scene / "cameras.npz") as z:
        K0, wfc = z["intrinsics"], z["world_from_camera"].astype(np.float64)
    with np.load(scene / "depth.npz") as z:
        depth_mm = z["depth_mm"]
    with np.load(scene / "labels.npz") as z:
        inst = z["instance"]
    F, H, W = depth_mm.shape
    size = (int(img_size[0]), int(img_size[1]))
    video = _decode_video(scene / "video.mp4", F)
    if video.shape[0] != F or video.shape[1:3] != (H, W):
        raise ValueError(f"{scene}: video {video.shape} does not match depth {depth_mm.shape}")
    K = fit_intrinsics(K0, (W, H), size)
    images = np.stack([fit_image(im, size) for im in video])
    depth = np.stack([fit_image(d, size, nearest=True) for d in depth_mm]).astype(np.float32) / 1000.0
    ins = np.stack([fit_image(m, size, nearest=True) for m in inst])
    seg = np.zeros(ins.shape, np.uint8)
    tables: list[np.ndarray] = []
    offsets = [0]
    pclip, pvalid = [], []
    dim = int(getattr(encoder, "dim", 384))
    for f in range(F):
        ids, counts = np.unique(ins[f], return_counts=True)
        keep = [int(i) for i, c in zip(ids, counts) if i != 0 and c >= min_segment_px][:255]
        masks = [ins[f] == i for i in keep]
        for s, m in enumerate(masks):
            seg[f][m] = s + 1
        desc = mask_descriptors(images[f], masks, encoder, int(getattr(encoder, "size", 224))) if masks \
            else np.zeros((0, dim), np.float32)
        tables.append(desc.astype(np.float16))
        offsets.append(offsets[-1] + len(desc))
        pc, pv = patch_features(seg[f], desc, patch_size)
        pclip.append(pc.astype(np.float16))
        pvalid.append(pv)
    return PreparedRoom(info["config"]["name"], images, depth, K, wfc, seg,
                        np.concatenate(tables) if tables else np.zeros((0, dim), np.float16),
                        np.asarray(offsets, np.int64), np.stack(pclip), np.stack(pvalid))


def build_dataset(dc: Clip3rDataConfig, encoder=None, log: Callable[[str], None] = print,
                  root: Path | None = None, render_log=None, scene_root: Path | None = None) -> Path:
    """Render (cached) and prepare (cached) every training room; returns the data folder.

    root: where prepared data goes (default ``$OV3R_CACHE/clip3r_data``); scene_root: where
    rendered rooms are cached (default the bench cache, ``$OV3R_CACHE/bench``)."""
    if encoder is None:
        from ..models.compact import DEFAULT_WEIGHTS, ImageEncoder

        encoder = ImageEncoder.from_pretrained(device="cpu")
        encoder._ov3r_path = DEFAULT_WEIGHTS  # type: ignore[attr-defined]
    from ..scenegen.suite import cached_scene

    cfgs = room_configs(dc)
    enc_id = _encoder_id(encoder)
    base = Path(root) if root is not None else _cache_root()
    out = data_dir(dc, enc_id, root)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    if meta_path.exists():
        return out
    (base / "rooms").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rooms = []
    for i, cfg in enumerate(cfgs):
        p = base / "rooms" / f"{room_key(dc, cfg, enc_id)}.npz"
        if not p.exists():
            ts = time.perf_counter()
            scene = cached_scene(cfg, root=scene_root, log=render_log)
            tr = time.perf_counter() - ts
            prepare_room(scene, encoder, dc.img_size, dc.patch_size, dc.min_segment_px).save(p)
            log(f"[clip3r data] room {i + 1}/{len(cfgs)} {cfg.name}: render {tr:.0f} s, prepare "
                f"{time.perf_counter() - ts - tr:.0f} s")
        rooms.append({"file": f"../rooms/{p.name}", "name": cfg.name, "hash": config_hash(cfg)})
    meta = {"version": DATA_VERSION, "config": dc.to_dict(), "rooms": rooms, "encoder": _encoder_id(encoder),
            "seconds": time.perf_counter() - t0}
    meta_path.write_text(json.dumps(meta, indent=1))
    return out


def load_prepared(folder: Path) -> list[PreparedRoom]:
    meta = json.loads((Path(folder) / "meta.json").read_text())
    return [PreparedRoom.load(Path(folder) / r["file"]) for r in meta["rooms"]]


# ------------------------------------------------------------------------------------ windows

def _transform(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (pts @ T[:3, :3].T.astype(np.float32)) + T[:3, 3].astype(np.float32)


def covisibility(pts_kf: np.ndarray, valid: np.ndarray, K: np.ndarray, depth_kf: np.ndarray, patch: int,
                 rel_tol: float = 0.05) -> np.ndarray:
    """Per patch of a view, the fraction of its pixels whose GT point (``pts_kf (h, w, 3)`` in the
    keyframe's camera frame) the keyframe sees (in its image, in front of its depth). ``(N,)``."""
    h, w = valid.shape
    z = pts_kf[..., 2]
    ok = valid & (z > 1e-3)
    zs = np.where(ok, z, 1.0)
    u = np.floor(K[0, 0] * pts_kf[..., 0] / zs + K[0, 2]).astype(np.int64)
    v = np.floor(K[1, 1] * pts_kf[..., 1] / zs + K[1, 2]).astype(np.int64)
    ok &= (u >= 0) & (u < w) & (v >= 0) & (v < h)
    d = depth_kf[np.clip(v, 0, h - 1), np.clip(u, 0, w - 1)]
    ok &= (d > 0) & (z < d * (1 + rel_tol) + 0.02)
    return ok.reshape(h // patch, patch, w // patch, patch).mean(axis=(1, 3)).reshape(-1).astype(np.float32)


class Clip3rWindows:
    """Map-style dataset of windows over prepared rooms (see the module docstring).

    mode: ``"i2p"`` or ``"l2w"``; views: ``L`` for I2P, ``R + K`` for L2W (``num_scene=R``);
    strides: keyframe spacings to sample (in rendered frames).
    """

    def __init__(self, rooms: Sequence[PreparedRoom], mode: str = "i2p", views: int = 5, num_scene: int = 3,
                 strides: Sequence[int] = (1, 2), seed: int = 0, patch_size: int = 16,
                 scale_range: tuple = (0.5, 2.0), l2w_span: int = 6) -> None:
        if mode not in ("i2p", "l2w"):
            raise ValueError(f"mode must be 'i2p' or 'l2w', got {mode!r}")
        self.rooms = list(rooms)
        self.mode = mode
        self.views = int(views)
        self.num_scene = int(num_scene)
        self.seed = int(seed)
        self.patch = int(patch_size)
        self.scale_range = scale_range
        self.l2w_span = int(l2w_span)
        self.epoch = 0
        self._rays = [pixel_rays(r.K, r.images.shape[1:3]) for r in self.rooms]
        items = []
        for ri, r in enumerate(self.rooms):
            for s in strides:
                span = (self.views - 1) * s if mode == "i2p" else 2 * min(self.l2w_span, max(1, r.frames // 2 - 1))
                for start in range(r.frames - span):
                    items.append((ri, start, s))
        if not items:
            raise ValueError("no window fits the prepared rooms (too few frames)")
        self.items = items

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, idx: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(idx), 0 if self.mode == "i2p" else 1])

    def _cam_points(self, ri: int, f: int) -> tuple:
        r = self.rooms[ri]
        d = r.depth[f]
        return d[..., None] * self._rays[ri], d > 0

    def __getitem__(self, idx: int) -> dict[str, np.ndarray]:
        return self._i2p(idx) if self.mode == "i2p" else self._l2w(idx)

    def _common(self, r: PreparedRoom, frames: Sequence[int]) -> dict[str, np.ndarray]:
        return {"images": to_input(r.images[list(frames)]),
                "clip": r.patch_clip[list(frames)].astype(np.float32),
                "clip_valid": r.patch_valid[list(frames)].copy()}

    def _i2p(self, idx: int) -> dict[str, np.ndarray]:
        ri, start, s = self.items[idx]
        r = self.rooms[ri]
        frames = [start + s * i for i in range(self.views)]
        if self._rng(idx).random() < 0.5:  # walk either way
            frames = frames[::-1]
        k = self.views // 2
        Tkw = np.linalg.inv(r.world_from_camera[frames[k]])
        pts, valid, covis = [], [], []
        for f in frames:
            p, v = self._cam_points(ri, f)
            p = _transform(Tkw @ r.world_from_camera[f], p)
            pts.append(p)
            valid.append(v)
            covis.append(covisibility(p, v, r.K, r.depth[frames[k]], self.patch))
        out = self._common(r, frames)
        out.update(points=np.stack(pts).astype(np.float32), valid=np.stack(valid),
                   covis=np.stack(covis), keyframe=np.array(k))
        return out

    def _l2w(self, idx: int) -> dict[str, np.ndarray]:
        ri, start, s = self.items[idx]
        r = self.rooms[ri]
        rng = self._rng(idx)
        R, V = self.num_scene, self.views
        lo, hi = start, min(r.frames, start + 2 * self.l2w_span + 1)
        c = int(rng.integers(lo, hi))
        # keyframes to register: c and its next ones (stride s); scene frames: others near them
        reg = [min(r.frames - 1, c + s * i) for i in range(V - R)]
        pool = [f for f in range(lo, hi) if f not in reg]
        if len(pool) < R:
            pool = [f for f in range(r.frames) if f not in reg]
        scene = [int(f) for f in rng.choice(pool, size=R, replace=False)]
        frames = scene + reg
        origin = int(rng.integers(r.frames))  # the world frame: any camera of the walk
        Two = np.linalg.inv(r.world_from_camera[origin])
        cam, valid = zip(*(self._cam_points(ri, f) for f in frames))
        mean_depth = float(np.mean([r.depth[f][r.depth[f] > 0].mean() if (r.depth[f] > 0).any() else 1.0
                                    for f in scene]))
        unit = 1.0 / max(mean_depth, 1e-3)
        world = [_transform(Two @ r.world_from_camera[f], p) * unit for f, p in zip(frames, cam)]
        scales = np.exp(rng.uniform(np.log(self.scale_range[0]), np.log(self.scale_range[1]), size=V - R))
        local = []
        for j, f in enumerate(reg):
            p = cam[R + j]
            m = valid[R + j]
            md = float(np.linalg.norm(p[m], axis=-1).mean()) if m.any() else 1.0
            local.append(p / max(md, 1e-3) * scales[j])
        pts_in = np.stack([world[i] for i in range(R)] + local).astype(np.float32)
        valid = np.stack(valid)
        h, w = valid.shape[1:]
        void = ~(valid.reshape(V, h // self.patch, self.patch, w // self.patch, self.patch).mean(axis=(2, 4)) > 0.5)
        # per-sample segment table: rows of the frames' tables, indices shifted per view
        seg = np.zeros((V, h, w), np.int64)
        rows, base = [], 0
        for i, f in enumerate(frames):
            a, b = int(r.seg_offset[f]), int(r.seg_offset[f + 1])
            rows.append(r.seg_table[a:b])
            sf = r.seg[f].astype(np.int64)
            seg[i] = np.where(sf > 0, sf + base, 0)
            base += b - a
        table = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, r.seg_table.shape[1]), np.float32)
        out = self._common(r, frames)
        out.update(points_in=pts_in, void=void.reshape(V, -1), points=np.stack(world).astype(np.float32),
                   valid=valid, seg=seg, seg_table=table, num_scene=np.array(R))
        return out


def collate(items: Sequence[dict[str, np.ndarray]]):
    """Stack items into torch tensors; ``seg`` indices are offset into one batch-wide ``seg_table``."""
    import torch

    out = {}
    keys = items[0].keys()
    for k in keys:
        if k == "seg_table":
            continue
        if k == "seg":
            segs, base = [], 0
            for it in items:
                segs.append(np.where(it["seg"] > 0, it["seg"] + base, 0))
                base += len(it["seg_table"])
            out[k] = torch.from_numpy(np.stack(segs))
            continue
        out[k] = torch.from_numpy(np.stack([np.asarray(it[k]) for it in items]))
    if "seg_table" in keys:
        out["seg_table"] = torch.from_numpy(np.concatenate([it["seg_table"] for it in items]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m core.train.clip3r_data [--rooms N --frames F ...]``: render + prepare only."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m core.train.clip3r_data", description=main.__doc__)
    p.add_argument("--rooms", type=int, default=Clip3rDataConfig.rooms)
    p.add_argument("--frames", type=int, default=Clip3rDataConfig.frames)
    p.add_argument("--samples", type=int, default=Clip3rDataConfig.samples)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    dc = replace(Clip3rDataConfig(), rooms=a.rooms, frames=a.frames, samples=a.samples, seed=a.seed)
    print(build_dataset(dc, render_log=sys.stdout, log=lambda m: print(m, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
