"""Clip3rEngine: CLIP3R streaming reconstruction (I2P windows + L2W registration with retrieval).

Per video (keyframes from the pipeline, in order; progress stages in quotes):

1. "clip3r: encode": every keyframe is fitted to the network size (resize to cover + centre
   crop, :mod:`core.models.clip3r.preprocess`) and encoded once by the shared ViT encoder,
   lazily, as the windows reach it; with the CLIP injection, F_oCLIP of the frame comes from
   2D segments (the classical segmenter on colour) described by the compact image encoder
   (``clip_segments``), exactly as in training but with predicted instead of GT masks.
2. Initial window: the first ``window_init`` (L=5) keyframes through I2P; the world frame is
   the camera of its middle keyframe, the unit the mean distance of its confident points.
   Its frames' I2P points seed the scene buffer (:class:`core.models.clip3r.ReservoirBuffer`).
3. "clip3r: register": for every keyframe (the initial window's middle one first, then the
   rest in video order): an I2P window of ``window_incremental`` keyframes centred on it
   (L=11 in the ``paper`` config; by default our own checkpoints use the window length they
   were trained on; clamped at the ends of the video) gives its points in its
   own camera frame; the retrieval scorer picks ``num_scene_frames`` scene frames from the
   buffer; L2W registers the keyframe into the world frame and its DPT head gives per-pixel
   CLIP3R features. The camera pose comes from the world point map by PnP (RANSAC, the
   pixel rays of the intrinsics; a weighted Umeyama fit of the camera-frame points to the
   world points when PnP fails). Confident points (``keep_fraction`` most confident pixels
   above ``min_conf``) join the scene; the frame is offered to the reservoir buffer; a partial
   SemanticScene goes out every ``partial_every`` keyframes.
4. "fusion": voxel downsampling (scene extent / ``voxel_divisions``).

Intrinsics: given ones (working-image pixels) are used; otherwise the focal length is
estimated from the initial keyframe's camera-frame point map (principal point at the centre).
The world has no metric scale (as for any monocular method); benchmarks align with Sim(3).

Precision (``precision``, OV3R_CLIP3R_PRECISION): "auto" runs the transformers under bf16
autocast where the hardware is fast at it (CUDA; x86 CPUs with AVX512-BF16 / AMX, where bf16
matrix products are ~4x fp32), else fp32; the point heads always run in fp32 (as SLAM3R's).

Weights (``Clip3rSettings``; environment variables fill what is not given): ``weights`` /
``OV3R_CLIP3R_WEIGHTS`` = one of our safetensors checkpoints (``ov3r train clip3r``);
``slam3r_i2p`` + ``slam3r_l2w`` / ``OV3R_SLAM3R_I2P`` + ``OV3R_SLAM3R_L2W`` = SLAM3R's public
checkpoints, fetched by the user (loaded into the ``paper`` config; the CLIP parts start
fresh); else ``$OV3R_CACHE/clip3r/clip3r.safetensors`` (``ov3r train clip3r --install``).
Nothing is ever downloaded: without weights, a JobError says where to get them.

``Reconstruction.extras`` (all optional for consumers):
- ``clip3r_features`` ``(M, d, h, w) float16``: per camera of ``Reconstruction.cameras`` (same
  order), the L2W DPT head's per-pixel CLIP3R features (F_CLIP3R, in the space of the F_oCLIP
  the model was trained with: ``extras["clip3r_feature_space"]``), average-pooled over
  ``s x s`` cells of the network image (``s = extras["clip3r_feature_geometry"]["stride"]``).
- ``clip3r_feature_geometry``: how a cell maps to working-image pixels: the network image is
  the working image resized by ``scale = (sx, sy)`` then cropped at ``offset = (x0, y0)`` to
  ``net_size (H, W)``; cell ``(i, j)`` covers network pixels ``[s j, s j + s) x [s i, s i + s)``,
  i.e. working pixels ``u = (u' + x0) / sx``, ``v = (v' + y0) / sy``.
- ``clip3r_conf`` ``(M, H, W) float16``: L2W confidence maps (network size);
  ``timings`` (seconds per stage), ``model`` (config name / weights), ``windows_per_s``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import cache_dir
from ..jobs import JobContext, JobError
from ..precision import resolve_precision
from ..scene import Cameras, SemanticScene
from .engine import Keyframe, Reconstruction
from .torch_threads import torch_threads

__all__ = ["Clip3rEngine", "Clip3rSettings", "load_clip3r_model", "pose_from_pointmap"]

WEIGHTS_HELP = (
    "CLIP3R needs weights, and Ov3R never downloads them. Either train the small model on this "
    "machine with `ov3r train clip3r --install` (writes {default}), or point OV3R_CLIP3R_WEIGHTS "
    "(engine setting `weights`) at a CLIP3R .safetensors checkpoint, or give SLAM3R's public I2P and "
    "L2W checkpoints that you downloaded yourself (https://huggingface.co/siyan824/slam3r_i2p and "
    "https://huggingface.co/siyan824/slam3r_l2w, licence CC BY-NC-SA 4.0) with OV3R_SLAM3R_I2P and "
    "OV3R_SLAM3R_L2W (settings `slam3r_i2p`, `slam3r_l2w`)."
)


@dataclass
class Clip3rSettings:
    """Every knob of the learned engine (stored in the scene metadata as "settings")."""

    weights: str | None = None  # our CLIP3R safetensors checkpoint
    slam3r_i2p: str | None = None  # SLAM3R's public I2P checkpoint (user-downloaded)
    slam3r_l2w: str | None = None  # SLAM3R's public L2W checkpoint
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    window_init: int | None = None  # None: the model config's (5)
    window_incremental: int | None = None  # None: the window our checkpoint was trained on, else the config's (11)
    num_scene_frames: int | None = None  # None: the model config's
    buffer_size: int | None = None  # None: the model config's
    max_candidates: int = 64  # buffer frames scored per keyframe (most recent first beyond this)
    conf_void: float = 1.5  # I2P confidence below which a patch enters L2W as "void"
    min_conf: float = 1.0  # absolute L2W confidence floor of a kept point (e.g. 3 for SLAM3R weights; 1 = none)
    keep_fraction: float = 0.6  # at most this fraction of a keyframe's pixels (the most confident)
    clip_segments: str = "auto"  # F_oCLIP source: "auto" (classical when the model injects), "classical", "none"
    feature_stride: int = 4  # pooling of the returned CLIP3R features (network pixels)
    partial_every: int = 4  # keyframes between partial scenes
    voxel_divisions: int = 400  # voxel = scene extent / this
    precision: str = "auto"  # "fp32" | "bf16" | "fp16" (CUDA); "auto": bf16 where the hardware has it (CUDA, AVX512-BF16 / AMX CPUs)
    encode_batch: int = 4
    pnp_reproj_px: float = 3.0
    threads: int | None = None  # torch CPU threads (None: leave as is)
    seed: int = 0

    @staticmethod
    def from_env(**overrides: Any) -> Clip3rSettings:
        """Settings with OV3R_CLIP3R_WEIGHTS / OV3R_SLAM3R_I2P / OV3R_SLAM3R_L2W /
        OV3R_CLIP3R_DEVICE / OV3R_CLIP3R_WINDOW (incremental window length) /
        OV3R_CLIP3R_PRECISION filled in where ``overrides`` does not set them."""
        s = Clip3rSettings(**overrides)  # type: ignore[arg-type]
        env = os.environ
        if s.weights is None and s.slam3r_i2p is None and s.slam3r_l2w is None:
            s.weights = env.get("OV3R_CLIP3R_WEIGHTS") or None
            if s.weights is None:
                s.slam3r_i2p = env.get("OV3R_SLAM3R_I2P") or None
                s.slam3r_l2w = env.get("OV3R_SLAM3R_L2W") or None
        if "device" not in overrides and env.get("OV3R_CLIP3R_DEVICE"):
            s.device = env["OV3R_CLIP3R_DEVICE"]
        if "window_incremental" not in overrides and env.get("OV3R_CLIP3R_WINDOW"):
            s.window_incremental = int(env["OV3R_CLIP3R_WINDOW"])
        if "precision" not in overrides and env.get("OV3R_CLIP3R_PRECISION"):
            s.precision = env["OV3R_CLIP3R_PRECISION"]
        return s


def foclip_encoder_id(meta: dict) -> str | None:
    """The sha256[:16] of the compact encoder whose F_oCLIP a checkpoint was trained on: its
    ``foclip_encoder`` metadata, else (older checkpoints) the training data's meta.json when that
    is still in the cache. None when unknown."""
    if meta.get("foclip_encoder"):
        return str(meta["foclip_encoder"])
    f = cache_dir("clip3r_data") / str(meta.get("data", "")) / "meta.json"
    try:
        return str(json.loads(f.read_text())["encoder"]) if meta.get("data") else None
    except (OSError, KeyError, ValueError):
        return None


def foclip_encoder_path(encoder_id: str | None) -> Path | None:
    """The shipped compact weights file whose sha256 starts with ``encoder_id`` (None: not shipped / unknown)."""
    if not encoder_id:
        return None
    from ..hashing import file_sha256
    from ..models.compact import DEFAULT_WEIGHTS

    from ..models.shipped import retired_by_hash, retired_message

    for f in sorted(DEFAULT_WEIGHTS.parent.glob("*.safetensors")):
        if file_sha256(f).startswith(encoder_id):
            return f
    retired = retired_by_hash(encoder_id)
    if retired is not None:  # its F_oCLIP came from an encoder that no longer ships: say how to get it back
        raise JobError(f"this CLIP3R checkpoint was trained with F_oCLIP from {retired}: {retired_message(retired)}")
    return None


def load_clip3r_model(st: Clip3rSettings, device: str = "cpu"):
    """-> ``(model (eval), info dict)``; raises JobError with :data:`WEIGHTS_HELP` when no weights."""
    from ..models.clip3r import CLIP3R, get_config, load_checkpoint, load_slam3r
    from ..models.clip3r.checkpoint import default_weights_path

    if st.weights:
        p = Path(st.weights).expanduser()
        if not p.is_file():
            raise JobError(f"CLIP3R weights not found: {p}. " + WEIGHTS_HELP.format(default=default_weights_path()))
        try:
            model, meta = load_checkpoint(p, device=device)
        except ValueError as exc:
            raise JobError(f"{p}: {exc}") from None
        info = {"kind": "clip3r", "path": str(p), "config": model.cfg.to_dict(),
                "clip_space": meta.get("clip_space", "all-MiniLM-L6-v2")}
        try:  # the I2P window length it was trained on (ov3r train clip3r records it)
            info["trained_window"] = int(json.loads(meta["train_config"])["i2p_views"])
        except (KeyError, ValueError, TypeError):
            pass
        info["foclip_encoder"] = foclip_encoder_id(meta)
        return model.eval(), info
    if st.slam3r_i2p or st.slam3r_l2w:
        if not (st.slam3r_i2p and st.slam3r_l2w):
            raise JobError("SLAM3R weights need both the I2P and the L2W checkpoint. "
                           + WEIGHTS_HELP.format(default=default_weights_path()))
        import torch

        with torch.device(device):
            model = CLIP3R(get_config("paper"))
        try:
            rep = load_slam3r(model, Path(st.slam3r_i2p).expanduser(), Path(st.slam3r_l2w).expanduser())
        except FileNotFoundError as exc:
            raise JobError(f"{exc}. " + WEIGHTS_HELP.format(default=default_weights_path())) from None
        except ValueError as exc:
            raise JobError(f"SLAM3R checkpoints do not fit the paper config: {exc}") from None
        return model.eval(), {"kind": "slam3r", "i2p": st.slam3r_i2p, "l2w": st.slam3r_l2w,
                              "config": model.cfg.to_dict(), "load": rep.summary(), "clip_space": None}
    p = default_weights_path()
    if p.is_file():
        return load_clip3r_model(Clip3rSettings(**{**asdict(st), "weights": str(p)}), device)
    raise JobError("no CLIP3R weights given. " + WEIGHTS_HELP.format(default=p))


# ------------------------------------------------------------------------------ geometry

def _umeyama(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted Sim(3): ``dst ~ s R src + t``. Returns ``(s, R, t)``."""
    w = np.ones(len(src)) if w is None else np.asarray(w, np.float64)
    w = w / max(w.sum(), 1e-12)
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var = float(w @ (xs ** 2).sum(1))
    s = float(np.trace(np.diag(S) @ D) / max(var, 1e-12))
    return s, R, mu_d - s * R @ mu_s


def pose_from_pointmap(world: np.ndarray, K: np.ndarray, mask: np.ndarray, local: np.ndarray | None = None,
                       weights: np.ndarray | None = None, reproj_px: float = 3.0, max_points: int = 2000,
                       seed: int = 0) -> tuple[np.ndarray, str]:
    """World-from-camera ``(4, 4)`` of a view from its world point map ``(H, W, 3)``.

    PnP (EPnP in RANSAC, then Levenberg-Marquardt on the inliers) of the masked pixels' centres
    against their world points with intrinsics ``K``; if that fails (too few inliers) and
    ``local`` (the same pixels' points in the view's own camera frame, any scale) is given, a
    weighted Umeyama fit of local to world. Returns ``(pose, method)``.
    """
    import cv2

    vv, uu = np.nonzero(mask)
    rng = np.random.default_rng(seed)
    if len(uu) > max_points:
        pick = rng.choice(len(uu), max_points, replace=False)
        vv, uu = vv[pick], uu[pick]
    obj = world[vv, uu].astype(np.float64)
    img = np.stack([uu + 0.5, vv + 0.5], -1).astype(np.float64)
    if len(obj) >= 6:
        try:
            ok, rvec, tvec, inl = cv2.solvePnPRansac(obj, img, np.asarray(K, np.float64), None,
                                                     iterationsCount=200, reprojectionError=reproj_px,
                                                     confidence=0.999, flags=cv2.SOLVEPNP_EPNP)
        except cv2.error:
            ok, inl = False, None
        if ok and inl is not None and len(inl) >= max(6, 0.2 * len(obj)):
            inl = inl[:, 0]
            rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], np.asarray(K, np.float64), None, rvec, tvec)
            Rcw, _ = cv2.Rodrigues(rvec)
            T = np.eye(4)
            T[:3, :3] = Rcw.T
            T[:3, 3] = -Rcw.T @ tvec[:, 0]
            return T, "pnp"
    if local is not None and mask.sum() >= 3:
        vv, uu = np.nonzero(mask)
        w = None if weights is None else weights[vv, uu]
        _, R, t = _umeyama(local[vv, uu].astype(np.float64), world[vv, uu].astype(np.float64), w)
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, t
        return T, "umeyama"
    T = np.eye(4)
    return T, "none"


def estimate_focal(points: np.ndarray, conf: np.ndarray, size_hw: tuple[int, int]) -> float:
    """Focal length (px) of a camera-frame point map ``(H, W, 3)``, principal point at the centre
    (weighted least squares of ``u - cx = f X / Z``, ``v - cy = f Y / Z``)."""
    H, W = size_hw
    vv, uu = np.mgrid[0:H, 0:W]
    Z = points[..., 2]
    ok = Z > 1e-6
    x = np.where(ok, points[..., 0] / np.where(ok, Z, 1), 0)
    y = np.where(ok, points[..., 1] / np.where(ok, Z, 1), 0)
    au, av = uu + 0.5 - W / 2, vv + 0.5 - H / 2
    w = np.where(ok, conf, 0.0)
    num = float((w * (au * x + av * y)).sum())
    den = float((w * (x * x + y * y)).sum())
    f = num / den if den > 0 else 0.0
    if not np.isfinite(f) or f <= 0:
        f = 0.8 * max(H, W)  # a phone-like field of view
    return f


# ------------------------------------------------------------------------------ the engine

class Clip3rEngine:
    """Learned engine; ``reconstruct`` follows the GeometryEngine protocol."""

    name = "clip3r"

    def __init__(self, settings: Clip3rSettings | None = None) -> None:
        self.settings = settings or Clip3rSettings.from_env()
        self._model = None
        self._info: dict = {}
        self._device = None

    # -- model ------------------------------------------------------------------------------
    def device(self) -> str:
        if self._device is None:
            import torch

            d = self.settings.device
            self._device = ("cuda" if torch.cuda.is_available() else "cpu") if d == "auto" else d
        return self._device

    def model(self):
        if self._model is None:
            self._model, self._info = load_clip3r_model(self.settings, self.device())
        return self._model

    def _clip_fn(self, model):
        """``image (H, W, 3) uint8 -> (F_oCLIP (N, d), valid (N,))`` or None (no injection)."""
        st = self.settings
        mode = st.clip_segments
        if mode == "auto":
            mode = "classical" if model.cfg.clip_injection else "none"
        if mode == "none" or not model.cfg.clip_injection:
            return None
        if mode != "classical":
            raise JobError(f"unknown clip_segments {st.clip_segments!r} (auto, classical, none)")
        from ..models.clip3r.preprocess import patch_features
        from ..models.compact import ImageEncoder
        from ..semantics.descriptors import mask_descriptors
        from ..semantics.segment_classical import ClassicalSegmenter, ClassicalSettings

        # F_oCLIP from the encoder the checkpoint was trained with (its descriptors are what the
        # cross-attention learned to read), else the shipped default
        self._foclip_path = foclip_encoder_path(self._info.get("foclip_encoder"))
        enc = ImageEncoder.from_pretrained(self._foclip_path, device="cpu")
        if enc.dim != model.cfg.clip_dim:
            raise JobError(f"the model's F_oCLIP width is {model.cfg.clip_dim} but the compact encoder gives "
                           f"{enc.dim}; set clip_segments='none' or use matching weights")
        seg = ClassicalSegmenter(ClassicalSettings(max_side=max(model.cfg.img_size)))
        patch = model.cfg.patch_size

        def fn(img: np.ndarray):
            masks = seg.segment(img, None, None)
            label = np.zeros(img.shape[:2], np.int64)
            for s, m in enumerate(masks):
                label[m & (label == 0)] = s + 1
            desc = mask_descriptors(img, masks, enc, int(enc.size)) if masks else np.zeros((0, enc.dim), np.float32)
            return patch_features(label, desc, patch)

        return fn

    # -- reconstruction -----------------------------------------------------------------------
    def reconstruct(self, keyframes: list[Keyframe], ctx: JobContext, intrinsics: np.ndarray | None = None
                    ) -> Reconstruction:
        import torch

        if len(keyframes) < 2:
            raise JobError("CLIP3R needs at least 2 keyframes")
        # subnormal floats are very slow on x86 CPUs: flush them while the network runs, and only
        # then (the flag is process state; scipy's cKDTree, e.g. in the benchmark, crashes under it)
        dev_type = torch.device(self.device()).type
        dtype, precision = resolve_precision(self.settings.precision, dev_type)
        torch.set_flush_denormal(True)
        try:
            with torch_threads(self.settings.threads), torch.inference_mode(), \
                    torch.autocast(dev_type, dtype=dtype or torch.float32, enabled=dtype is not None):
                return self._reconstruct(keyframes, ctx, intrinsics, precision)
        finally:
            torch.set_flush_denormal(False)

    def _reconstruct(self, keyframes: list[Keyframe], ctx: JobContext, intrinsics: np.ndarray | None,
                     precision: str) -> Reconstruction:
        import torch
        import torch.nn.functional as F

        from ..models.clip3r import ReservoirBuffer, top_k_frames
        from ..models.clip3r.preprocess import fit_geometry, fit_image, fit_intrinsics, to_input
        from ..scene.extent import scene_extent
        from .sfm.fusion import PointSet, voxel_downsample

        st = self.settings
        timings: dict[str, float] = {"segments": 0.0, "encode": 0.0, "i2p": 0.0, "retrieval": 0.0, "l2w": 0.0,
                                     "pose": 0.0}
        t_all = time.perf_counter()
        model = self.model()
        dev = torch.device(self.device())
        cfg = model.cfg
        M = len(keyframes)
        H0, W0 = keyframes[0].image.shape[:2]
        size = tuple(cfg.img_size)
        Hn, Wn = size
        geo = fit_geometry((W0, H0), size)
        imgs = [fit_image(kf.image, size) for kf in keyframes]
        L0 = max(2, min(st.window_init or cfg.window_init, M))
        Li = st.window_incremental or self._info.get("trained_window") or cfg.window_incremental
        Li = max(2, min(Li, M))
        R_max = st.num_scene_frames or cfg.num_scene_frames
        buffer = ReservoirBuffer(st.buffer_size or cfg.buffer_size, seed=st.seed)
        clip_fn = self._clip_fn(model)

        # -- lazy per-frame encoding (each frame exactly once) ----------------------------------
        tokens: dict[int, torch.Tensor] = {}
        fused: dict[int, torch.Tensor] = {}
        delta: dict[int, torch.Tensor | None] = {}
        n_enc = [0]

        def encode(ids: list[int]) -> None:
            todo = [i for i in ids if i not in tokens]
            for a in range(0, len(todo), max(1, st.encode_batch)):
                chunk = todo[a:a + st.encode_batch]
                clip = valid = None
                if clip_fn is not None:
                    t0 = time.perf_counter()
                    feats = [clip_fn(imgs[i]) for i in chunk]
                    timings["segments"] += time.perf_counter() - t0
                    clip = torch.from_numpy(np.stack([f[0] for f in feats]))[None].to(dev)
                    valid = torch.from_numpy(np.stack([f[1] for f in feats]))[None].to(dev)
                t0 = time.perf_counter()
                x = torch.from_numpy(to_input(np.stack([imgs[i] for i in chunk])))[None].to(dev)
                fr = model.encode_frames(x, clip, valid)
                for j, i in enumerate(chunk):
                    tokens[i] = fr.tokens[0, j]
                    fused[i] = fr.fused[0, j]
                    delta[i] = None if fr.delta is None else fr.delta[0, j]
                n_enc[0] += len(chunk)
                timings["encode"] += time.perf_counter() - t0
                ctx.progress("clip3r: encode", n_enc[0], M)
            self._grid = (Hn // cfg.patch_size, Wn // cfg.patch_size)

        def i2p_window(center: int, L: int) -> tuple[list[int], int, torch.Tensor, torch.Tensor]:
            start = int(np.clip(center - L // 2, 0, M - L))
            ids = list(range(start, start + L))
            encode(ids)
            t0 = time.perf_counter()
            f = torch.stack([fused[i] for i in ids])[None]
            pts, conf = model.i2p.decode(f, self._grid, keyframe=center - start)
            timings["i2p"] += time.perf_counter() - t0
            return ids, center - start, pts[0], conf[0]

        def void_of(conf: torch.Tensor) -> torch.Tensor:
            p = cfg.patch_size
            low = (conf < st.conf_void).float()[None, None]
            return (F.avg_pool2d(low, p, p)[0, 0] > 0.5).reshape(-1)

        # -- initial window ---------------------------------------------------------------------
        ctx.progress("clip3r: register", 0, M)
        c0 = L0 // 2
        ids0, k0, pts0, conf0 = i2p_window(c0, L0)
        c0 = ids0[k0]
        good = conf0 > st.conf_void
        if int(good.sum()) < 16:
            good = conf0 >= conf0.flatten().median()
        unit = float(pts0[good].norm(dim=-1).mean().clamp(min=1e-6))
        world_pts: dict[int, torch.Tensor] = {}
        world_conf: dict[int, torch.Tensor] = {}
        for j, i in enumerate(ids0):
            world_pts[i] = pts0[j] / unit
            world_conf[i] = conf0[j]
            buffer.offer(i)
        local0 = (pts0[k0] / unit).cpu().numpy()
        if intrinsics is not None:
            K_net = fit_intrinsics(np.asarray(intrinsics, np.float64), (W0, H0), size)
        else:
            f = estimate_focal(local0, conf0[k0].cpu().numpy(), size)
            K_net = np.array([[f, 0, Wn / 2], [0, f, Hn / 2], [0, 0, 1.0]])
        sx, sy = geo.scale
        K_work = K_net.copy()
        K_work[0] = K_net[0] / sx
        K_work[1] = K_net[1] / sy
        K_work[0, 2] = (K_net[0, 2] + geo.x0) / sx
        K_work[1, 2] = (K_net[1, 2] + geo.y0) / sy
        K_work[2] = (0, 0, 1)

        # -- register every keyframe ----------------------------------------------------------------
        order = [c0] + [i for i in range(M) if i != c0]
        poses: dict[int, np.ndarray] = {}
        methods: dict[str, int] = {}
        parts: dict[int, PointSet] = {}
        feats: dict[int, np.ndarray] = {}
        confs: dict[int, np.ndarray] = {}
        s = max(1, int(st.feature_stride))
        meta = {"engine": self.name, "settings": asdict(st), "models": {"clip3r": self._info},
                "precision": precision}
        t_loop = time.perf_counter()
        for n, t in enumerate(order):
            ctx.check_cancel()
            if t == c0:
                local, lconf = pts0[k0] / unit, conf0[k0]
            else:
                _, kk, pw, cw = i2p_window(t, Li)
                local, lconf = pw[kk], cw[kk]
            # scene frames: retrieval over the buffer (minus this frame)
            cand = [i for i in buffer.ids if i != t]
            if len(cand) > st.max_candidates:
                cand = sorted(cand, key=lambda i: abs(i - t))[:st.max_candidates]
            t0 = time.perf_counter()
            if len(cand) > R_max:
                kf_f = fused[t][None]
                cf = torch.stack([fused[i] for i in cand])[None]
                scores = model.i2p.retrieval_scores(kf_f, cf, self._grid)[0]
                scene = [cand[int(j)] for j in top_k_frames(scores, R_max)]
            else:
                scene = cand
            timings["retrieval"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            ids = scene + [t]
            tok = torch.stack([tokens[i] for i in ids])[None]
            # I2P's scale is arbitrary: L2W sees the keyframe's points at unit mean distance (as in training)
            sure = lconf > st.conf_void
            norm = local[sure].norm(dim=-1).mean() if int(sure.sum()) >= 16 else local.norm(dim=-1).mean()
            local = local / norm.clamp(min=1e-6)
            pin = torch.stack([world_pts[i] for i in scene] + [local])[None]
            void = torch.stack([void_of(world_conf[i]) for i in scene] + [void_of(lconf)])[None]
            sem = None if delta[t] is None else torch.stack([delta[i] for i in ids])[None]
            out = model.l2w(tok, pin, len(scene), semantic=sem, void=void, grid=self._grid, features="register",
                            scene_outputs=False, feature_size=(Hn // s, Wn // s))
            wp, wc = out.points[0, -1], out.conf[0, -1]
            timings["l2w"] += time.perf_counter() - t0
            if t not in world_pts:  # the initial window's frames keep their I2P anchors in the buffer
                world_pts[t], world_conf[t] = wp, wc
                buffer.offer(t)
            if out.features is not None:  # predicted directly at the pooled size (network pixels / s)
                feats[t] = out.features[0, 0].float().cpu().numpy().astype(np.float16)
            # keep the confident pixels, pose from the world point map
            t0 = time.perf_counter()
            wpn, wcn = wp.cpu().numpy(), wc.cpu().numpy()
            confs[t] = wcn.astype(np.float16)
            finite = np.isfinite(wpn).all(-1)
            thr = max(st.min_conf, float(np.quantile(wcn[finite], 1.0 - st.keep_fraction))) if finite.any() \
                else np.inf
            keep = finite & (wcn >= thr)
            pose, how = pose_from_pointmap(wpn, K_net, keep, local.cpu().numpy(), wcn, st.pnp_reproj_px,
                                           seed=st.seed + t)
            methods[how] = methods.get(how, 0) + 1
            poses[t] = pose
            flat = np.flatnonzero(keep.ravel())
            parts[t] = PointSet(wpn.reshape(-1, 3)[flat].astype(np.float32), imgs[t].reshape(-1, 3)[flat].copy(),
                                (1.0 - 1.0 / np.maximum(wcn.reshape(-1)[flat], 1.0)).astype(np.float32),
                                np.full(flat.size, t, np.int32))
            timings["pose"] += time.perf_counter() - t0
            ctx.progress("clip3r: register", n + 1, M)
            if (n + 1) % max(1, st.partial_every) == 0 and n + 1 < M:
                ctx.partial(self._scene(parts, poses, keyframes, K_work, (W0, H0), meta))
        timings["register"] = time.perf_counter() - t_loop

        # -- fuse --------------------------------------------------------------------------------
        t0 = time.perf_counter()
        ctx.progress("fusion", 0, 1)
        cams, remap = self._cameras(poses, keyframes, K_work, (W0, H0))
        cloud = PointSet.concat([parts[i] for i in sorted(parts)])
        cloud = PointSet(cloud.points, cloud.colors, cloud.confidence, remap[cloud.frame_id])
        extent = scene_extent(cloud.points)
        voxel = extent / st.voxel_divisions if extent > 0 else 0.0
        cloud = voxel_downsample(cloud, voxel)
        ctx.progress("fusion", 1, 1)
        timings["fusion"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_all
        if len(cloud) == 0:
            raise JobError("CLIP3R kept no confident points; the weights may not suit this video")
        reg = sorted(poses)
        feat_arr = np.stack([feats[i] for i in reg]) if len(feats) == len(reg) else None
        extras: dict[str, Any] = {
            "registered_keyframes": np.asarray(reg, np.int64),
            "dropped_keyframes": 0,
            "voxel_size": voxel,
            "timings": timings,
            "model": self._info,
            "pose_methods": methods,
            "precision": precision,
            "windows_per_s": M / max(timings["register"], 1e-9),
            "clip3r_conf": np.stack([confs[i] for i in reg]),
            "clip3r_features": feat_arr,
            "clip3r_feature_space": self._info.get("clip_space"),
            "clip3r_feature_geometry": {"stride": s, "net_size": (Hn, Wn), "scale": geo.scale,
                                        "offset": (geo.x0, geo.y0), "image_size": (W0, H0)},
        }
        return Reconstruction(cloud.points, cloud.colors, cloud.confidence, cloud.frame_id, cams, extras)

    @staticmethod
    def _cameras(poses: dict, keyframes: list[Keyframe], K: np.ndarray, size_wh: tuple[int, int]
                 ) -> tuple[Cameras, np.ndarray]:
        """Cameras of the registered keyframes in video order, and input index -> camera index."""
        reg = sorted(poses)
        remap = np.full(len(keyframes), -1, np.int32)
        remap[reg] = np.arange(len(reg), dtype=np.int32)
        cams = Cameras(
            np.repeat(K[None].astype(np.float32), len(reg), 0),
            np.stack([poses[i] for i in reg]).astype(np.float32),
            np.array([keyframes[i].timestamp for i in reg], np.float64),
            np.array([keyframes[i].index for i in reg], np.int32),
            size_wh,
        )
        return cams, remap

    def _scene(self, parts: dict, poses: dict, keyframes: list[Keyframe], K: np.ndarray, size_wh, meta: dict
               ) -> SemanticScene:
        from .sfm.fusion import PointSet

        cams, remap = self._cameras(poses, keyframes, K, size_wh)
        ps = PointSet.concat([parts[i] for i in sorted(parts)])
        return SemanticScene.from_points(ps.points, ps.colors, ps.confidence, remap[ps.frame_id], cams, dict(meta))
