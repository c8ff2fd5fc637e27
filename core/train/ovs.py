"""Train the OVS fused segment descriptor: ``ov3r train ovs`` / ``python -m core.train.ovs``.

Data (:mod:`core.train.ovs_data`, training libraries only): per model its surface points and the
compact encoder's descriptors of its rendered views; the compact encoder fills the CLIP3R slot
until a trained CLIP3R gives its own F_oCLIP. Each training sample is one synthetic **segment** built like the
semantics stage builds a 3D segment:

- ``clip_inst`` = the mean of 1-5 view descriptors of the model (clean or augmented crops;
  sometimes blended with another model's descriptor, as the encoder errs on unseen objects);
- ``clip_scene`` = the mean of the same views' scene-level descriptors;
- ``points`` = 512 of the model's surface points, randomly turned about z, with hidden sides
  removed (orthographic z-buffer from 1-3 random views), sometimes cut by a plane or joined by
  floor points, colours darkened / jittered, small noise; normals re-estimated with
  :func:`core.models.ovs.estimate_normals` exactly as at inference;
- structure classes (wall, floor, ceiling, door, window): procedural planes with the
  descriptors of procedural images (only when no room segments are given);
- **room segments** (:mod:`core.train.ovs_rooms`, on by default when rendered training rooms
  are in the bench cache): real 3D segments of the semantics stage on rendered training rooms
  (GT geometry), with their averaged descriptors, full-frame descriptors, points and GT class:
  the test-time distribution, walls and floors included. A share ``--p-room`` of the samples;
  validation then uses held-out rooms.

Stage A distils the :class:`~core.models.ovs.PointEncoder` into the text space
(:func:`~core.models.ovs.distill_loss` to the mean clean view descriptor of the model, plus
L_sim against the class prompts; models without a class distil only). Stage B trains
:class:`~core.models.ovs.OvsFusion` (point encoder from stage A, frozen by default: its outputs
on a bank of augmented point sets are computed once, which makes stage B cheap on a CPU) with
L_sim (:class:`~core.models.ovs.SigmoidLoss`) over segment x class-prompt pairs with path
dropout; ``--keep-best`` ships the state with the best validation accuracy.
No DINOv2 checkpoint is available offline, so the DINO path is not trained (its features are
always absent; the weights file says so and the stage never feeds DINO to such weights).

Resumable: ``<work-dir>/checkpoint.pt`` (tensors and plain values, loaded with
``weights_only=True``) every ``--ckpt-every`` steps, RNG states included, so ``--resume``
continues exactly where the run stopped. Final weights: fp16 safetensors
(``core/models/ovs/weights/ovs_v6.safetensors`` by default).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import cache_dir
from ..models.ovs import (
    FusionConfig,
    OvsFusion,
    PointEncoderConfig,
    SigmoidLoss,
    distill_loss,
    estimate_normals,
)
from ..semantics.descriptors import CROPS, DEFAULT_CROP
from .ovs_data import TEXT_CLASSES, OvsData, structure_points

__all__ = [
    "DEFAULT_OUT",
    "SampleConfig",
    "SegmentSampler",
    "augment_points",
    "build_parser",
    "class_text_embeddings",
    "default_fusion_config",
    "main",
    "train",
]

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "models" / "ovs" / "weights"
TRAINED_PATHS = ["clip_inst", "clip_scene", "points"]  # DINO: no checkpoint offline -> never trained


def default_fusion_config() -> FusionConfig:
    """The shipped size (~3.4 M parameters, ~6.7 MB in fp16). The point encoder sees 256 points per
    segment with 64 / 16 set-abstraction centroids (a quarter of the default's cost: this CPU)."""
    return FusionConfig(mlp_ratio=1.0, weight_hidden=128, mask_hidden=256,
                        point=PointEncoderConfig(n_points=256, centroids=(64, 16), neighbours=(16, 12)))


def class_text_embeddings(classes: Sequence[str] = TEXT_CLASSES, encoder=None) -> torch.Tensor:
    """``(T, 384)`` the benchmark prompt ("This is a photo of a {}") of every class, as queries use it."""
    from ..semantics.text_encoder import TextEncoder

    te = encoder if encoder is not None else TextEncoder()
    return torch.from_numpy(np.asarray(te.encode_prompts(list(classes)), np.float32))


# ------------------------------------------------------------------------------------ samples

@dataclass(frozen=True)
class SampleConfig:
    n_points: int = 256  # points per segment (the point encoder's input size)
    max_views: int = 5  # views averaged into a segment's descriptor (the lifting's top_views)
    p_clean: float = 0.3  # a view's instance descriptor from the clean crop (else the augmented one)
    p_mix: float = 0.5  # blend clip_inst with another model's descriptor (encoder errors)
    mix_range: tuple[float, float] = (0.1, 0.7)  # weight of the segment's own descriptor in such a blend
    p_struct: float = 0.15  # procedural structure segments (only without room segments)
    p_room: float = 0.6  # segments of rendered training rooms (when given)
    p_unlabelled: float = 0.3  # stage A: models without a class (distillation only)
    p_cull: float = 0.85
    p_cut: float = 0.3
    p_floor: float = 0.25


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _visible(xyz: np.ndarray, d: np.ndarray, cells: int = 48, tol: float = 0.02) -> np.ndarray:
    """Points an orthographic camera looking along ``-d`` sees: z-buffer on a ``cells`` grid."""
    d = d / np.linalg.norm(d)
    a = np.cross(d, [0.0, 0.0, 1.0]) if abs(d[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    u, v, depth = xyz @ a, xyz @ b, -(xyz @ d)  # depth: distance from the camera side
    ext = max(np.ptp(u), np.ptp(v), 1e-6)
    iu = np.clip(((u - u.min()) / ext * (cells - 1)).astype(int), 0, cells - 1)
    iv = np.clip(((v - v.min()) / ext * (cells - 1)).astype(int), 0, cells - 1)
    cell = iu * cells + iv
    zmin = np.full(cells * cells, np.inf)
    np.minimum.at(zmin, cell, depth)
    return depth <= zmin[cell] + max(tol, 1.5 * ext / cells)


def augment_points(p: np.ndarray, rng: np.random.Generator, cfg: SampleConfig = SampleConfig(),
                   structure: bool = False) -> np.ndarray:
    """One segment's points from a model's surface samples ``(n, 9)``: see the module docstring.
    Returns ``(m, 9) float32`` (normals unchanged: they are re-estimated per batch)."""
    xyz, rgb, nrm = p[:, :3].astype(np.float64), p[:, 3:6].astype(np.float64), p[:, 6:9].astype(np.float64)
    th = rng.uniform(0, 2 * np.pi)
    R = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1.0]])
    xyz, nrm = xyz @ R.T, nrm @ R.T
    keep = np.ones(len(xyz), bool)
    if not structure and rng.uniform() < cfg.p_cull:
        vis = np.zeros(len(xyz), bool)
        for _ in range(int(rng.integers(1, 4))):
            az, el = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(5, 60))
            vis |= _visible(xyz, np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]))
        if vis.sum() >= 32:
            keep = vis
    if rng.uniform() < cfg.p_cut:
        c = xyz[keep][int(rng.integers(keep.sum()))]
        u = rng.normal(size=3)
        cut = keep & ((xyz - c) @ u < 0)
        if 0.4 * keep.sum() <= cut.sum() <= 0.95 * keep.sum():
            keep = cut
    xyz, rgb, nrm = xyz[keep], rgb[keep], nrm[keep]
    if not structure and rng.uniform() < cfg.p_floor:  # the segment leaked onto the floor
        k = int(len(xyz) * rng.uniform(0.05, 0.25)) + 1
        lo, hi = xyz[:, :2].min(0), xyz[:, :2].max(0)
        m = rng.uniform(0.05, 0.4)
        fl = np.stack([rng.uniform(lo[0] - m, hi[0] + m, k), rng.uniform(lo[1] - m, hi[1] + m, k),
                       np.full(k, xyz[:, 2].min())], 1)
        from .ovs_data import _structure_colour

        col = _structure_colour("floor", rng)
        xyz = np.concatenate([xyz, fl])
        rgb = np.concatenate([rgb, np.tile(col, (k, 1))])
        nrm = np.concatenate([nrm, np.tile([0.0, 0.0, 1.0], (k, 1))])
    # lighting: global gain, per-channel gains, shading by the normal, noise
    light = _normalise(rng.normal(size=3) + [0, 0, 1.5])
    shade = 0.75 + 0.25 * np.abs(nrm @ light)
    rgb = rgb * rng.uniform(0.4, 1.15) * rng.uniform(0.9, 1.1, 3) * shade[:, None]
    rgb = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1)
    xyz = xyz + rng.normal(0, 0.003, xyz.shape)
    return np.concatenate([xyz, rgb, nrm], 1).astype(np.float32)


def _subsample(p: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((n, p.shape[1]), np.float32)
    mask = np.zeros(n, bool)
    if len(p) > n:
        p = p[rng.choice(len(p), n, replace=False)]
    out[:len(p)] = p
    mask[:len(p)] = True
    return out, mask


class SegmentSampler:
    """Draws batches of synthetic segments from :class:`OvsData` rows ``models`` (indices) and
    structure rows ``structs``; class-balanced over the labelled models (class mass ~ #models^0.5)."""

    def __init__(self, data: OvsData, models: np.ndarray, structs: np.ndarray, cfg: SampleConfig = SampleConfig(),
                 seed: int = 0, rooms=None, room_rows: np.ndarray | None = None) -> None:
        self.data, self.cfg = data, cfg
        self.rooms = rooms if rooms is not None and room_rows is not None and len(room_rows) else None
        if self.rooms is not None:
            self.room_rows = np.asarray(room_rows, np.int64)
            _, inv, cnt = np.unique(rooms.label[self.room_rows], return_inverse=True, return_counts=True)
            w = cnt[inv] ** (0.5 - 1.0)
            self.p_room_rows = w / w.sum()
            structs = np.zeros(0, np.int64)  # real walls / floors / doors / windows instead of procedural ones
        self.models = np.asarray(models, np.int64)
        self.structs = np.asarray(structs, np.int64)
        lab = data.label[self.models]
        self.labelled = self.models[lab >= 0]
        self.unlabelled = self.models[lab < 0]
        if len(self.labelled):
            _, inv, cnt = np.unique(data.label[self.labelled], return_inverse=True, return_counts=True)
            w = cnt[inv] ** (0.5 - 1.0)
            self.p_lab = w / w.sum()
        self.struct_by_cls = {int(c): self.structs[data.struct_label[self.structs] == c]
                              for c in np.unique(data.struct_label[self.structs])} if len(self.structs) else {}
        self.rng = np.random.default_rng(seed)
        self.bank: dict[str, dict[int, np.ndarray]] | None = None

    @torch.no_grad()
    def build_bank(self, point_encoder, n_aug: int = 8, n_struct: int = 64, batch: int = 64, seed: int = 0,
                   log=None) -> None:
        """Stage B with a frozen point encoder: its outputs for ``n_aug`` augmented point sets of
        every labelled model and ``n_struct`` procedural sets per structure class, computed once
        (own RNG: the sampler's stream is untouched). Samples then carry ``point_feat``."""
        rng = np.random.default_rng([seed, 77])
        was = point_encoder.training
        point_encoder.eval()
        jobs: list[tuple[str, int]] = [("m", int(m)) for m in self.labelled for _ in range(n_aug)]
        jobs += [("s", int(c)) for c in self.struct_by_cls for _ in range(n_struct)]
        if self.rooms is not None:
            jobs += [("r", int(r)) for r in self.room_rows for _ in range(max(1, n_aug // 4))]
        feats: list[np.ndarray] = []
        for i in range(0, len(jobs), batch):
            items = []
            for kind, k in jobs[i:i + batch]:
                if kind == "m":
                    p = augment_points(self.data.points[k].astype(np.float32), rng, self.cfg)
                elif kind == "r":
                    p = augment_points(self._room_points(k), rng, self.cfg, structure=True)
                else:
                    p = augment_points(structure_points(TEXT_CLASSES[k], rng), rng, self.cfg, structure=True)
                items.append({"points": p})
            pts, masks = zip(*(_subsample(it["points"], self.cfg.n_points, rng) for it in items))
            P, M = torch.from_numpy(np.stack(pts)), torch.from_numpy(np.stack(masks))
            P[..., 6:9] = estimate_normals(P[..., :3], M)
            feats.append(point_encoder(P, M).numpy())
            if log and (i // batch) % 10 == 0:
                log(f"point bank {i + len(items)}/{len(jobs)}")
        f = np.concatenate(feats) if feats else np.zeros((0, 1), np.float32)
        bank: dict[str, dict[int, np.ndarray]] = {"m": {}, "s": {}, "r": {}}
        keys = np.array([f"{kind}{k}" for kind, k in jobs])
        for kind, k in dict.fromkeys(jobs):
            bank[kind][k] = f[keys == f"{kind}{k}"]
        self.bank = bank
        point_encoder.train(was)

    # RNG state as JSON (checkpoints hold only plain values and tensors)
    def get_state(self) -> str:
        return json.dumps(self.rng.bit_generator.state)

    def set_state(self, s: str) -> None:
        self.rng.bit_generator.state = json.loads(s)

    def _views(self, m: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, rng, c = self.data, self.rng, self.cfg
        nv = int(d.nview[m])
        v = rng.choice(nv, size=min(k, nv), replace=False)
        clean = rng.random(len(v)) < c.p_clean
        inst = np.where(clean[:, None], d.inst[m, v], d.inst_aug[m, v]).astype(np.float32)
        return _normalise(inst.mean(0)), _normalise(d.scene[m, v].astype(np.float32).mean(0)), v

    def _room_points(self, r: int) -> np.ndarray:
        p = self.rooms.segment_points(r).astype(np.float32)
        return np.concatenate([p, np.zeros((len(p), 3), np.float32)], 1)

    def _room_sample(self, stage: str) -> dict[str, Any]:
        rng, c, R = self.rng, self.cfg, self.rooms
        r = int(self.room_rows[rng.choice(len(self.room_rows), p=self.p_room_rows)])
        ci = R.clip_inst[r].astype(np.float32)
        if rng.uniform() < c.p_mix:  # another segment's descriptor blended in (the encoder errs)
            o = int(self.room_rows[rng.integers(len(self.room_rows))])
            if o != r:
                a = rng.uniform(*c.mix_range)
                ci = a * ci + (1 - a) * R.clip_inst[o].astype(np.float32)
        ci = _normalise(ci)
        out = {"clip_inst": ci, "clip_scene": _normalise(R.clip_scene[r].astype(np.float32)), "target": ci,
               "label": int(R.label[r])}
        if self.bank is not None and stage == "B":
            feats = self.bank["r"][r]
            return {**out, "point_feat": feats[int(rng.integers(len(feats)))]}
        return {**out, "points": augment_points(self._room_points(r), rng, c, structure=True)}

    def sample(self, stage: str) -> dict[str, Any]:
        d, rng, c = self.data, self.rng, self.cfg
        if self.rooms is not None and rng.uniform() < c.p_room:
            return self._room_sample(stage)
        u = rng.uniform()
        k = int(rng.integers(1, c.max_views + 1))
        if len(self.struct_by_cls) and (u < c.p_struct or not len(self.models)):
            cls = list(self.struct_by_cls)[int(rng.integers(len(self.struct_by_cls)))]
            rows = self.struct_by_cls[cls]
            r = rows[rng.choice(len(rows), size=min(k, len(rows)), replace=False)]
            ci = _normalise(d.struct_inst[r].astype(np.float32).mean(0))
            cs = _normalise(d.struct_scene[r].astype(np.float32).mean(0))
            out = {"clip_inst": ci, "clip_scene": cs, "target": ci, "label": cls}
            if self.bank is not None and stage == "B":
                feats = self.bank["s"][cls]
                return {**out, "point_feat": feats[int(rng.integers(len(feats)))]}
            return {**out, "points": augment_points(structure_points(TEXT_CLASSES[cls], rng), rng, c, structure=True)}
        if stage == "A" and len(self.unlabelled) and rng.uniform() < c.p_unlabelled:
            m = int(self.unlabelled[rng.integers(len(self.unlabelled))])
        else:
            m = int(self.labelled[rng.choice(len(self.labelled), p=self.p_lab)])
        ci, cs, _ = self._views(m, k)
        if rng.uniform() < c.p_mix and len(self.models) > 1:
            o = int(self.models[rng.integers(len(self.models))])
            if o != m:
                co, _, _ = self._views(o, int(rng.integers(1, c.max_views + 1)))
                a = rng.uniform(*c.mix_range)
                ci = _normalise(a * ci + (1 - a) * co)
        target = _normalise(d.inst[m, :int(d.nview[m])].astype(np.float32).mean(0))
        out = {"clip_inst": ci, "clip_scene": cs, "target": target, "label": int(d.label[m])}
        if self.bank is not None and stage == "B":
            feats = self.bank["m"][m]
            return {**out, "point_feat": feats[int(rng.integers(len(feats)))]}
        return {**out, "points": augment_points(d.points[m].astype(np.float32), rng, c)}

    def batch(self, B: int, stage: str) -> dict[str, torch.Tensor]:
        items = [self.sample(stage) for _ in range(B)]
        return collate_segments(items, self.cfg.n_points, self.rng)


def collate_segments(items: list[dict], n_points: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Stack samples; subsample to ``n_points`` and replace the normals by PCA estimates (as at
    inference), or stack the precomputed ``point_feat`` of a point bank."""
    if "point_feat" in items[0]:
        out = {"point_feats": torch.from_numpy(np.stack([it["point_feat"] for it in items]).astype(np.float32))}
    else:
        pts, masks = zip(*(_subsample(it["points"], n_points, rng) for it in items))
        P = torch.from_numpy(np.stack(pts))
        M = torch.from_numpy(np.stack(masks))
        with torch.no_grad():
            P[..., 6:9] = estimate_normals(P[..., :3], M)
        out = {"points": P, "point_mask": M}
    return {**out,
            "clip_inst": torch.from_numpy(np.stack([it["clip_inst"] for it in items]).astype(np.float32)),
            "clip_scene": torch.from_numpy(np.stack([it["clip_scene"] for it in items]).astype(np.float32)),
            "target": torch.from_numpy(np.stack([it["target"] for it in items]).astype(np.float32)),
            "label": torch.tensor([it["label"] for it in items], dtype=torch.long)}


def split_models(data: OvsData, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train models, val models, train structure rows, val structure rows). Validation: ``val_frac``
    of the labelled models of each class with >= 3 models, and of each structure class."""
    rng = np.random.default_rng([seed, 31])
    val = []
    for c in np.unique(data.label[data.label >= 0]):
        rows = np.flatnonzero(data.label == c)
        n = round(val_frac * len(rows)) if len(rows) >= 3 else 0
        val += list(rng.choice(rows, size=n, replace=False)) if n else []
    val_m = np.array(sorted(val), np.int64)
    tr_m = np.setdiff1d(np.arange(len(data.label)), val_m)
    sval = []
    for c in np.unique(data.struct_label):
        rows = np.flatnonzero(data.struct_label == c)
        n = round(val_frac * len(rows)) if len(rows) >= 3 else 0
        sval += list(rng.choice(rows, size=n, replace=False)) if n else []
    sv = np.array(sorted(sval), np.int64)
    return tr_m, val_m, np.setdiff1d(np.arange(len(data.struct_label)), sv), sv


# ------------------------------------------------------------------------------------ training

def _lr(step: int, total: int, base: float, warm: int, frac: float | None = None) -> float:
    if step < warm:
        return base * (step + 1) / warm
    p = frac if frac is not None else (step - warm) / max(1, total - warm)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, p))))


@torch.no_grad()
def evaluate(fusion: OvsFusion, batch: dict[str, torch.Tensor], text: torch.Tensor,
             point_feats: torch.Tensor | None = None) -> dict[str, float]:
    """Top-1 accuracy over the class prompts of a fixed batch: plain descriptor (clip_inst), fused,
    fused without the 3D path, point encoder alone (labelled rows only); ``*_bal``: the same as
    mean per-class recall (plain and fused). ``point_feats``: the
    point encoder's outputs on the batch, when already known (a frozen encoder)."""
    was = fusion.training
    fusion.eval()
    lab = batch["label"]
    ok = lab >= 0
    tn = F.normalize(text, dim=-1)

    def hits(d: torch.Tensor) -> torch.Tensor:
        return ((F.normalize(d, dim=-1) @ tn.T).argmax(1)[ok] == lab[ok]).float()

    def balanced(h: torch.Tensor) -> float:  # mean per-class recall: what mAcc rewards
        classes = lab[ok].unique()
        return float(torch.stack([h[lab[ok] == c].mean() for c in classes]).mean())

    g = point_feats if point_feats is not None else fusion.point_encoder(batch["points"], batch["point_mask"])
    h_mean = hits(batch["clip_inst"])
    h_fused = hits(fusion(batch["clip_inst"], batch["clip_scene"], point_feats=g))
    out = {"mean": float(h_mean.mean()), "fused": float(h_fused.mean()),
           "fused_no3d": float(hits(fusion(batch["clip_inst"], batch["clip_scene"])).mean()),
           "points": float(hits(g).mean()),
           "mean_bal": balanced(h_mean), "fused_bal": balanced(h_fused)}
    fusion.train(was)
    return out


def train(args: argparse.Namespace, data: OvsData | None = None, fusion_cfg: FusionConfig | None = None,
          text: torch.Tensor | None = None, rooms=None) -> Path:
    """Run both stages (see :func:`build_parser`); ``data`` / ``fusion_cfg`` / ``text`` override the
    prepared data, the shipped size and the real text encoder (tests). Returns the weights path
    (the checkpoint's path when ``--stop-after`` interrupted the run)."""
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "train_log.jsonl", "a") as log_f:
        return _train(args, work, log_f, data, fusion_cfg, text, rooms)


def _train(args: argparse.Namespace, work: Path, log_f, data: OvsData | None, fusion_cfg: FusionConfig | None,
           text: torch.Tensor | None, rooms_arg=None) -> Path:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    def log(msg: str, **kw) -> None:
        log_f.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "msg": msg, **kw}) + "\n")
        log_f.flush()
        if not getattr(args, "quiet", False):
            print(msg, kw if kw else "", file=sys.stderr, flush=True)

    data_path = None
    if data is None:
        from .ovs_data import OvsDataConfig, load_ovs_data, prepare_ovs_data

        data_path = prepare_ovs_data(OvsDataConfig(n_points=args.data_points, crop=args.crop), args.compact_weights,
                                     log=log)
        data = load_ovs_data(data_path)
    from ..scenegen.splits import TEST_LIBRARIES

    libs = {o["library"] for o in data.objects}
    assert not (libs & set(TEST_LIBRARIES)), f"OVS training data holds test libraries {libs & set(TEST_LIBRARIES)}"
    fcfg = fusion_cfg or default_fusion_config()
    fcfg = replace(fcfg, point=replace(fcfg.point, n_points=args.points))
    if text is None:
        text = class_text_embeddings()
    if text.shape != (len(TEXT_CLASSES), fcfg.dim):
        raise ValueError(f"text embeddings {tuple(text.shape)} != ({len(TEXT_CLASSES)}, {fcfg.dim})")
    tr_m, val_m, tr_s, val_s = split_models(data, args.val_frac, args.seed)
    scfg = SampleConfig(n_points=args.points, p_mix=args.p_mix, p_room=args.p_room)
    rooms, rooms_path = rooms_arg, None
    if rooms is None and args.rooms and data_path is not None:  # a real run (tests pass their data)
        from .ovs_rooms import load_room_segments, prepare_room_segments

        rooms_path = prepare_room_segments(compact_weights=args.compact_weights, log=log, crop=args.crop,
                                           count=getattr(args, "room_count", None))
        rooms = load_room_segments(rooms_path) if rooms_path else None
    tr_r = val_r = None
    if rooms is not None and len(rooms):
        n_val = max(1, round(args.val_frac * len(rooms.rooms))) if len(rooms.rooms) > 1 else 0
        val_rooms = np.arange(len(rooms.rooms) - n_val, len(rooms.rooms))  # the last rooms by name
        in_val = np.isin(rooms.room, val_rooms)
        tr_r, val_r = np.flatnonzero(~in_val), np.flatnonzero(in_val)
        log("room segments", segments=len(rooms), train=len(tr_r), val=len(val_r),
            val_rooms=[rooms.rooms[i] for i in val_rooms])
    sampler = SegmentSampler(data, tr_m, tr_s, scfg, args.seed, rooms, tr_r)
    if val_r is not None and len(val_r):  # validation on held-out rooms: the test-time distribution
        vcfg = replace(scfg, p_room=1.0, p_mix=0.0)
        val_batch = SegmentSampler(data, tr_m, tr_s, vcfg, args.seed + 1000, rooms, val_r).batch(args.val_size, "B")
    else:
        val_batch = SegmentSampler(data, val_m if len(val_m) else tr_m, val_s if len(val_s) else tr_s, scfg,
                                   args.seed + 1000).batch(args.val_size, "B")
    log("data", models=len(data.label), labelled=int((data.label >= 0).sum()), train_models=len(tr_m),
        val_models=len(val_m), structure=len(data.struct_label), libraries=sorted(libs))

    fusion = OvsFusion(fcfg)
    pe = fusion.point_encoder  # stage A trains this very module
    if args.init_point_encoder:
        from ..models.ovs import load_checkpoint

        ck = load_checkpoint(args.init_point_encoder, "point_encoder")
        if PointEncoderConfig.from_dict(ck.config) != fcfg.point:
            raise ValueError(f"{args.init_point_encoder}: point encoder config {ck.config} != {fcfg.point}")
        pe.load_state_dict(ck.state)
        log(f"point encoder initialised from {args.init_point_encoder}")
    crit_a, crit_b = SigmoidLoss(), SigmoidLoss()
    opt_a = torch.optim.AdamW(list(pe.parameters()) + list(crit_a.parameters()), lr=args.lr_a, weight_decay=args.wd)
    pe_ids = {id(p) for p in pe.parameters()}
    frozen = args.pe_lr_mult <= 0  # stage B on a point bank of the frozen stage-A encoder
    groups = [{"params": [p for p in fusion.parameters() if id(p) not in pe_ids], "lr": args.lr_b},
              {"params": list(crit_b.parameters()), "lr": args.lr_b}]
    if not frozen:
        groups.append({"params": list(pe.parameters()), "lr": args.lr_b * args.pe_lr_mult})
    opt_b = torch.optim.AdamW(groups, lr=args.lr_b, weight_decay=args.wd)
    base_lrs = [g["lr"] for g in opt_b.param_groups]
    state: dict[str, Any] = {"stage": "A", "step": 0, "seconds": 0.0, "history": []}
    ckpt = work / "checkpoint.pt"

    def save_ckpt() -> None:
        tmp = work / "checkpoint.tmp.pt"
        torch.save({"fusion": fusion.state_dict(), "crit_a": crit_a.state_dict(), "crit_b": crit_b.state_dict(),
                    "opt_a": opt_a.state_dict(), "opt_b": opt_b.state_dict(), "stage": state["stage"],
                    "step": state["step"], "seconds": state["seconds"], "history": json.dumps(state["history"]),
                    "sampler_rng": sampler.get_state(), "torch_rng": torch.get_rng_state(),
                    "best": float(state.get("best", -1.0))}, tmp)
        os.replace(tmp, ckpt)

    if args.resume and ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=True)
        fusion.load_state_dict(st["fusion"])
        crit_a.load_state_dict(st["crit_a"])
        crit_b.load_state_dict(st["crit_b"])
        opt_a.load_state_dict(st["opt_a"])
        opt_b.load_state_dict(st["opt_b"])
        state.update(stage=st["stage"], step=int(st["step"]), seconds=float(st["seconds"]),
                     history=json.loads(st["history"]), best=float(st.get("best", -1.0)))
        sampler.set_state(st["sampler_rng"])
        torch.set_rng_state(st["torch_rng"])
        log(f"resumed: stage {state['stage']} step {state['step']}", seconds=round(state["seconds"], 1))
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    budget = args.time_budget_min * 60.0
    budget_a = budget * args.stage_a_frac
    stop_after = getattr(args, "stop_after", None)
    run_steps = 0
    interrupted = False

    val_pe: dict[str, torch.Tensor] = {}  # the frozen encoder's outputs on the validation batch

    def run_stage(stage: str, steps: int, stage_budget: float, offset_steps: int, offset_secs: float) -> None:
        nonlocal run_steps, interrupted
        warm = max(1, int(0.05 * steps))
        local = state["step"] - offset_steps
        bar = tqdm(total=steps, initial=local, desc=f"ovs stage {stage}", file=sys.stderr, leave=False,
                   disable=getattr(args, "quiet", False)) if tqdm else None
        while local < steps:
            spent = state["seconds"] - offset_secs
            frac = spent / stage_budget if stage_budget > 0 else None
            if frac is not None and frac >= 1.0:
                break
            if stop_after is not None and run_steps >= stop_after:
                interrupted = True
                break
            t0 = time.time()
            b = sampler.batch(args.batch if stage == "A" else args.batch_b, stage)
            if stage == "A":
                pe.train()
                lr = _lr(local, steps, args.lr_a, warm, frac)
                for g in opt_a.param_groups:
                    g["lr"] = lr
                pred = pe(b["points"], b["point_mask"])
                l_d = distill_loss(pred, b["target"])
                l_s = crit_a(pred, text, b["label"]) if bool((b["label"] >= 0).any()) else pred.sum() * 0
                loss = l_d + args.sim_weight_a * l_s
                opt_a.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(pe.parameters(), 5.0)
                opt_a.step()
                info = {"loss": loss.item(), "distill": l_d.item(), "sim": l_s.item()}
            else:
                fusion.train()
                s = _lr(local, steps, 1.0, warm, frac)
                for g, base in zip(opt_b.param_groups, base_lrs):
                    g["lr"] = base * s
                if "point_feats" in b:
                    out = fusion.forward_parts(b["clip_inst"], b["clip_scene"], point_feats=b["point_feats"])
                else:
                    out = fusion.forward_parts(b["clip_inst"], b["clip_scene"], None, b["points"], b["point_mask"])
                loss = crit_b(out.descriptor, text, b["label"])
                opt_b.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in opt_b.param_groups for p in g["params"]], 5.0)
                opt_b.step()
                info = {"loss": loss.item()}
            state["step"] += 1
            local += 1
            run_steps += 1
            state["seconds"] += time.time() - t0
            if bar:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in info.items()})
            if local % args.log_every == 0 or local == steps:
                rec = {"stage": stage, "step": state["step"], **{k: round(v, 4) for k, v in info.items()},
                       "seconds": round(state["seconds"], 1)}
                if local % args.eval_every == 0 or local == steps:
                    rec["val"] = {k: round(v, 4) for k, v in evaluate(fusion, val_batch, text, val_pe.get(stage)).items()}
                    if stage == "B" and args.keep_best and rec["val"][args.select_by] > state.get("best", -1.0):
                        state["best"] = rec["val"][args.select_by]
                        torch.save({"fusion": fusion.state_dict(), "crit_b": crit_b.state_dict(),
                                    "step": state["step"], "val": json.dumps(rec["val"])}, work / "best.pt")
                state["history"].append(rec)
                log(f"stage {stage} step {local}/{steps}", **{k: v for k, v in rec.items() if k != "stage"})
            if state["step"] % args.ckpt_every == 0:
                save_ckpt()
        if bar:
            bar.close()

    t_start = time.time()
    if state["stage"] == "A":
        run_stage("A", args.steps_a, budget_a, 0, 0.0)
        if interrupted:
            save_ckpt()
            log("stopped (--stop-after); resume with --resume", step=state["step"])
            return ckpt
        state["stage"] = "B"
        state["a_steps_done"] = state["step"]
        state["history"].append({"stage": "A_done", "step": state["step"], "seconds": round(state["seconds"], 1)})
        save_ckpt()
        pe.save(work / "point_encoder_stage_a.safetensors", extra={"train_steps": state["step"]})
    if state["stage"] == "B":
        if frozen:
            pe.requires_grad_(False)
            t_bank = time.time()
            sampler.build_bank(pe, args.bank_aug, args.bank_struct, 64, args.seed, log)
            log("point bank built (frozen stage-A point encoder)", seconds=round(time.time() - t_bank, 1))
            with torch.no_grad():
                pe.eval()
                val_pe["B"] = pe(val_batch["points"], val_batch["point_mask"])
        a_done = next((h for h in state["history"] if h.get("stage") == "A_done"), {"step": 0, "seconds": 0.0})
        run_stage("B", args.steps_b, budget - float(a_done["seconds"]) if budget else 0.0, int(a_done["step"]),
                  float(a_done["seconds"]))
        if interrupted:
            save_ckpt()
            log("stopped (--stop-after); resume with --resume", step=state["step"])
            return ckpt
        state["stage"] = "done"
        save_ckpt()
    best_step = None
    if args.keep_best and (work / "best.pt").exists():  # the best validation state of stage B
        bst = torch.load(work / "best.pt", map_location="cpu", weights_only=True)
        fusion.load_state_dict(bst["fusion"])
        crit_b.load_state_dict(bst["crit_b"])
        best_step = int(bst["step"])
        log(f"kept the best validation state (step {best_step})", val=json.loads(bst["val"]))
    final_val = evaluate(fusion, val_batch, text, val_pe.get("B"))
    from ..hashing import file_sha256
    from .ovs_data import _default_weights

    enc_path = Path(args.compact_weights) if args.compact_weights else _default_weights()
    out = Path(args.out) / args.name
    a_done = next((h for h in state["history"] if h.get("stage") == "A_done"), {"step": 0})
    extra = {"logit_scale": crit_b.t.item(), "logit_bias": crit_b.b.item(), "trained_paths": TRAINED_PATHS,
             "dino": "untrained: no DINOv2 checkpoint was available; never feed DINO features to these weights",
             "text_classes": list(TEXT_CLASSES), "prompt": "This is a photo of a {}",
             "clip_slot": f"compact image encoder ({enc_path.stem}) features in the CLIP3R slot",
             "encoder_sha256": file_sha256(enc_path), "crop": args.crop,
             "steps_a": int(a_done["step"]), "steps_b": int(state["step"] - int(a_done["step"])),
             "batch_b": args.batch_b, "kept_step": best_step if best_step is not None else state["step"], "point_encoder_in_stage_b": "frozen (point bank)" if frozen else "trained",
             "train_seconds": round(state["seconds"], 1), "batch": args.batch, "seed": args.seed,
             "val": final_val, "data": data_path.parent.name if data_path else "given",
             "rooms": (rooms_path.parent.name if rooms_path else "given") if rooms is not None else "none",
             "init_point_encoder": Path(args.init_point_encoder).name if args.init_point_encoder else "",
             "command": "ov3r train ovs " + " ".join(getattr(args, "argv", []))}
    fusion.eval()
    fusion.save(out, extra=extra, half=not args.full_precision)
    log(f"wrote {out}", bytes=out.stat().st_size, seconds=round(state["seconds"], 1), wall=round(time.time() - t_start, 1),
        val=final_val)
    return out


def build_parser() -> argparse.ArgumentParser:
    cache = cache_dir()
    ap = argparse.ArgumentParser(prog="ov3r train ovs", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder of the final weights")
    ap.add_argument("--name", default="ovs_v6.safetensors")
    ap.add_argument("--work-dir", default=str(cache / "ovs_runs" / "v1"), help="checkpoint and log folder")
    ap.add_argument("--resume", action="store_true", help="continue from <work-dir>/checkpoint.pt")
    ap.add_argument("--steps-a", type=int, default=600, help="stage A steps (point-encoder distillation)")
    ap.add_argument("--steps-b", type=int, default=900, help="stage B steps (fusion)")
    ap.add_argument("--time-budget-min", type=float, default=0.0,
                    help="stop each stage at its share of this many minutes of training (cosine over time)")
    ap.add_argument("--stage-a-frac", type=float, default=0.4, help="stage A's share of --time-budget-min")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--points", type=int, default=256, help="points per segment")
    ap.add_argument("--data-points", type=int, default=2048, help="surface samples per model in the dataset")
    ap.add_argument("--compact-weights", default=None,
                    help="image encoder whose descriptors fill the CLIP3R slot (default: the shipped compact one); "
                         "must be the encoder the semantics stage will use with these weights")
    ap.add_argument("--crop", default=DEFAULT_CROP, choices=CROPS,
                    help="mask crops of the image descriptors (the semantics stage then uses the same with "
                         "these weights)")
    ap.add_argument("--lr-a", type=float, default=1e-3)
    ap.add_argument("--lr-b", type=float, default=3e-4)
    ap.add_argument("--pe-lr-mult", type=float, default=0.0,
                    help="point encoder's lr factor in stage B; 0 (default): frozen, its outputs precomputed "
                         "for --bank-aug augmented point sets per model (stage B then costs little)")
    ap.add_argument("--bank-aug", type=int, default=8, help="augmented point sets per model in the point bank")
    ap.add_argument("--bank-struct", type=int, default=64, help="procedural point sets per structure class")
    ap.add_argument("--batch-b", type=int, default=256, help="stage B batch")
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--sim-weight-a", type=float, default=0.5, help="weight of L_sim in stage A")
    ap.add_argument("--p-mix", type=float, default=SampleConfig.p_mix)
    ap.add_argument("--rooms", action=argparse.BooleanOptionalAction, default=True,
                    help="also train on segments of the rendered training rooms in the bench cache (default on)")
    ap.add_argument("--room-count", type=int, default=None, metavar="N",
                    help="only the first N training rooms (python -m core.scenegen.suite --training N renders "
                         "them); default: every rendered one")
    ap.add_argument("--p-room", type=float, default=SampleConfig.p_room, help="share of room segments")
    ap.add_argument("--init-point-encoder", default=None,
                    help="start from these point-encoder weights (e.g. an earlier run's stage A; --steps-a 0 skips A)")
    ap.add_argument("--val-frac", type=float, default=0.12)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-best", action="store_true",
                    help="ship stage B's state with the best validation accuracy (held-out training rooms or "
                         "models), not the last one")
    ap.add_argument("--select-by", default="fused_bal", choices=["fused", "fused_bal"],
                    help="--keep-best's validation measure: top-1 accuracy or mean per-class recall")
    ap.add_argument("--full-precision", action="store_true", help="store fp32 (default fp16, to ship)")
    ap.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)  # tests: simulate a kill
    ap.add_argument("--quiet", action="store_true")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
