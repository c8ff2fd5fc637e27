"""Train a compact encoder's head on cached frozen-backbone features.

    python -m core.train.compact_cached --backbone effnet_lite2 --size 256 --object-crops 20480 \\
        --scene-crops 20480 --steps 6000 --out core/models/compact/weights --name compact_v9.safetensors

The compact encoders on a pretrained backbone (``centernet``, ``effnet_lite2``) train only a
small head on pooled backbone features (``net.features(x)``); the backbone is frozen. The
on-the-fly trainer (:mod:`core.train.compact`) spends ~95 % of its time in the backbone and
sees each augmented crop once: compact_v7 got 264 steps of 128 crops in 45 minutes, its
training-batch accuracy still rising. Here the backbone runs once per augmented crop (the same
renders, in-scene crops, class-balanced sampler, augmentations and targets as that trainer) and
its pooled features are cached; the head then trains for thousands of steps on them in minutes.

Two stages, each resumable:

1. ``featurize``: ``--object-crops`` augmented object views + ``--scene-crops`` in-scene crops,
   in chunks of ``CHUNK`` (``<work-dir>/features/<key>/chunk_<i>.npz``: ``feat (n, F) float16``,
   ``obj (n,) int32`` into the combined object list). The backbone runs under bf16 autocast where
   the CPU has fast bf16 (``core.precision``), as the semantics stage runs it.
2. ``train``: LayerNorm + MLP head from random init, the paper's sigmoid loss L_sim against class
   prompts + the batch's catalog names (:func:`core.train.compact._targets`), AdamW, cosine
   schedule, feature dropout. Writes fp16 safetensors like the other trainer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..scenegen.splits import TEST_LIBRARIES
from ..scenegen.taxonomy import STRUCTURE_CLASSES
from ..cache import cache_dir
from ..models.compact.encoder import save_weights
from ..models.compact.build import build_net
from ..models.compact.net import CompactConfig, SigmoidLoss
from ..precision import resolve_precision
from ..semantics.text_encoder import TextEncoder
from .compact import (_backbone_provenance, _Sampler, _targets, jsonl_logger, object_classes, text_targets,
                      training_rooms)
from .compact_aug import augment, augment_context, background_bank
from .compact_data import DataConfig, build_dataset, load_dataset

__all__ = ["CHUNK", "feature_key", "featurize", "load_features", "train_head", "run", "main"]

#: crops per feature chunk (one file; a killed run loses at most one chunk)
CHUNK = 2048


def _features(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(B, 4, S, S)`` -> the head's input ``(B, F)`` (the effnet net also returns logits: dropped)."""
    f = net.features(x)
    return f[0] if isinstance(f, tuple) else f


def feature_key(args: argparse.Namespace) -> str:
    """Hash of everything that decides the cached features."""
    keys = {k: getattr(args, k) for k in ("backbone", "size", "object_crops", "scene_crops", "scene_rooms", "views",
                                          "views_unlabelled", "data_seed", "alpha", "unlabelled_frac", "seed",
                                          "backgrounds", "precision")}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def _load_sources(args: argparse.Namespace, log, data=None, scene=None):
    """The training renders, the in-scene crops (or None) and the combined object list;
    ``data`` / ``scene`` override the rendered ones (tests)."""
    dcfg = DataConfig("train", args.views, args.views_unlabelled, 128, args.data_seed)
    if data is None:
        data = load_dataset(build_dataset(dcfg, workers=args.render_workers, log=log))
    objects = list(data.objects)
    if scene is None and args.scene_rooms and args.scene_crops:
        from .compact_scene_data import build_scene_crops

        scene = build_scene_crops(training_rooms(args.scene_rooms), log=log)
    if scene is not None and not args.scene_crops:
        scene = None
    if scene is not None:
        objects += scene.objects
    libs = {o["library"] for o in objects}
    assert not (libs & set(TEST_LIBRARIES)), f"training data holds test libraries {libs & set(TEST_LIBRARIES)}"
    return dcfg, data, scene, objects


def featurize(args: argparse.Namespace, net: torch.nn.Module, data, scene, log) -> Path:
    """Stage 1: cache the pooled features of the augmented crops; returns the chunk folder."""
    folder = Path(args.work_dir) / "features" / feature_key(args)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "args.json").write_text(json.dumps({k: v for k, v in vars(args).items() if k != "argv"}, indent=1))
    n_data = len(data.objects)
    sampler = _Sampler(data.obj, data.objects, args.alpha, args.unlabelled_frac, args.seed)
    scene_sampler = None
    if scene is not None:
        scene_sampler = _Sampler(scene.obj.astype(np.int64) + n_data, data.objects + scene.objects, args.alpha, 0.0,
                                 args.seed + 7)
    total = args.object_crops + (args.scene_crops if scene is not None else 0)
    chunks = math.ceil(total / CHUNK)
    frac_scene = (args.scene_crops / total) if scene is not None else 0.0
    autocast, _ = resolve_precision(args.precision, "cpu", "compact featurize")
    net.eval()
    t_start = time.time()
    for c in range(chunks):
        path = folder / f"chunk_{c:04d}.npz"
        if path.exists():
            continue
        t0 = time.time()
        n = min(CHUNK, total - c * CHUNK)
        rng = np.random.default_rng([args.seed, c])
        sampler.rng = np.random.default_rng([args.seed, c, 1])
        n_scene = int(round(n * frac_scene))
        idx = sampler.draw(n - n_scene)
        pool = data.rgba[rng.choice(len(data.rgba), size=min(1024, len(data.rgba)), replace=False)]
        torch.set_num_threads(1)  # tiny per-sample ops: threads only add overhead
        bank = background_bank(rng, data.rgba.shape[1], args.backgrounds, pool)
        obj = [data.obj[idx].astype(np.int64)]
        sidx = np.zeros(0, np.int64)
        if n_scene:
            scene_sampler.rng = np.random.default_rng([args.seed, c, 2])
            sidx = scene_sampler.draw(n_scene)
            obj.append(scene.obj[sidx].astype(np.int64) + n_data)
        feats = []
        items = [("o", i) for i in idx] + [("s", i) for i in sidx]
        for b in range(0, n, args.batch):
            torch.set_num_threads(1)
            xs = [augment(data.rgba[i], rng, args.size, pool, bank) if kind == "o"
                  else augment_context(scene.rgb[i], scene.mask[i], rng, args.size)
                  for kind, i in items[b:b + args.batch]]
            torch.set_num_threads(args.threads)
            with torch.no_grad(), torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                feats.append(_features(net, torch.stack(xs)).float().numpy().astype(np.float16))
        tmp = folder / f"chunk_{c:04d}.tmp.npz"
        np.savez(tmp, feat=np.concatenate(feats), obj=np.concatenate(obj).astype(np.int32))
        os.replace(tmp, path)
        log(f"features chunk {c + 1}/{chunks}", crops=n, seconds=round(time.time() - t0, 1),
            elapsed=round(time.time() - t_start, 1))
    return folder


def load_features(folder: Path) -> Tuple[np.ndarray, np.ndarray]:
    """All chunks of ``folder``: ``feat (N, F) float16``, ``obj (N,) int64``."""
    files = sorted(folder.glob("chunk_[0-9][0-9][0-9][0-9].npz"))  # not a killed run's chunk_NNNN.tmp.npz
    if not files:
        raise FileNotFoundError(f"no feature chunks in {folder}")
    feat, obj = [], []
    for f in files:
        with np.load(f) as z:
            feat.append(z["feat"])
            obj.append(z["obj"].astype(np.int64))
    return np.concatenate(feat), np.concatenate(obj)


def _class_accuracy(head: torch.nn.Module, feat: np.ndarray, obj: np.ndarray, objects: List[Dict],
                    class_emb: torch.Tensor, classes: List[str]) -> float:
    """Top-1 accuracy against the class prompts over the labelled rows of ``feat (N, F)``."""
    cidx = {c: i for i, c in enumerate(classes)}
    lab = np.array([objects[o]["class"] in cidx for o in obj], bool)
    if not lab.any():
        return float("nan")
    truth = torch.tensor([cidx[objects[o]["class"]] for o in obj[lab]])
    was = head.training
    head.eval()
    with torch.no_grad():
        pred = torch.cat([(head(torch.from_numpy(feat[lab][i:i + 2048]).float()) @ class_emb.T).argmax(1)
                          for i in range(0, int(lab.sum()), 2048)])
    head.train(was)
    return float((pred == truth).float().mean())


def holdout_split(obj: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """``(N,) bool``: rows whose object is among a random ``frac`` of the objects (held out)."""
    ids = np.unique(obj)
    held = np.random.default_rng(seed).choice(ids, size=int(round(frac * len(ids))), replace=False)
    return np.isin(obj, held)


def train_head(net: torch.nn.Module, feat: np.ndarray, obj: np.ndarray, objects: List[Dict], classes: List[str],
               te: TextEncoder, args: argparse.Namespace, log, held: Optional[Tuple[np.ndarray, np.ndarray]] = None
               ) -> SigmoidLoss:
    """Stage 2: train ``net.norm`` + ``net.head`` on ``feat (N, F)`` with targets from ``obj (N,)``;
    ``held``: held-out ``(feat, obj)`` whose class accuracy is logged (``held_class_acc``).
    Returns the fitted loss (its t, b are saved with the weights)."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed + 3)
    class_emb, name_key, name_emb = text_targets(te, classes, objects)
    crit = SigmoidLoss()
    head = torch.nn.Sequential(net.norm, net.head)
    params = list(head.parameters()) + list(crit.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.wd)
    X = torch.from_numpy(feat)
    head.train()
    run_loss, run_acc, n_acc, n_run = 0.0, 0.0, 0, 0
    t0 = time.time()
    for step in range(args.steps):
        lr = args.lr * (step + 1) / args.warmup if step < args.warmup else \
            args.lr * 0.5 * (1 + math.cos(math.pi * (step - args.warmup) / max(1, args.steps - args.warmup)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, len(X), args.head_batch)
        x = X[idx].float()
        if args.feature_dropout:
            x = torch.nn.functional.dropout(x, args.feature_dropout)
        names, tgt, wts = _targets(obj[idx], objects, classes, name_key)
        txt = torch.cat([class_emb, torch.stack([name_emb[n] for n in names])])
        emb = torch.nn.functional.normalize(head(x), dim=-1)
        loss = crit(emb, txt, tgt, wts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        with torch.no_grad():
            lab = tgt[:, :len(classes)].sum(1) > 0
            if lab.any():
                pred = (emb[lab] @ class_emb.T).argmax(1)
                run_acc += float((tgt[lab, :len(classes)].argmax(1) == pred).float().sum())
                n_acc += int(lab.sum())
        run_loss += loss.item()
        n_run += 1
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            extra = {"held_class_acc": _class_accuracy(head, *held, objects, class_emb, classes)} if held else {}
            log(f"step {step + 1}/{args.steps}", loss=run_loss / n_run,
                train_class_acc=run_acc / max(n_acc, 1),
                lr=lr, t=crit.log_t.exp().item(), b=crit.b.item(), seconds=round(time.time() - t0, 1), **extra)
            run_loss, run_acc, n_acc, n_run = 0.0, 0.0, 0, 0
    head.eval()
    return crit


def build_parser() -> argparse.ArgumentParser:
    cache = cache_dir()
    ap = argparse.ArgumentParser(prog="python -m core.train.compact_cached", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models" / "compact" / "weights"))
    ap.add_argument("--name", default="compact_cached.safetensors")
    ap.add_argument("--work-dir", default=str(cache / "compact_runs" / "cached"))
    ap.add_argument("--backbone", default="effnet_lite2", choices=["centernet", "effnet_lite2"])
    ap.add_argument("--size", type=int, default=256, help="input crop size")
    ap.add_argument("--object-crops", type=int, default=20480, help="augmented object views to featurize")
    ap.add_argument("--scene-crops", type=int, default=20480, help="augmented in-scene crops to featurize")
    ap.add_argument("--scene-rooms", type=int, default=30, help="rendered training rooms the in-scene crops come from")
    ap.add_argument("--views", type=int, default=48, help="rendered views per labelled training model")
    ap.add_argument("--views-unlabelled", type=int, default=8)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--render-workers", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.3, help="class mass ~ (#objects)^alpha")
    ap.add_argument("--unlabelled-frac", type=float, default=0.15)
    ap.add_argument("--backgrounds", type=int, default=128, help="random backgrounds drawn per chunk")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                    help="the backbone's precision while featurizing (auto: bf16 where the CPU has it fast)")
    ap.add_argument("--batch", type=int, default=64, help="backbone batch while featurizing")
    ap.add_argument("--steps", type=int, default=6000, help="head training steps")
    ap.add_argument("--head-batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--feature-dropout", type=float, default=0.1, help="dropout on the cached features")
    ap.add_argument("--log-every", type=int, default=500)
    ap.add_argument("--holdout-frac", type=float, default=0.0,
                    help="hold out this fraction of the training objects (all their crops) and log the head's class "
                    "accuracy on them: for choosing steps / learning rate; the shipped head uses 0")
    ap.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--featurize-only", action="store_true", help="stop after stage 1")
    return ap


def run(args: argparse.Namespace, data=None, scene=None) -> Optional[Path]:
    """Both stages for ``args`` (see :func:`build_parser`); ``data`` / ``scene`` override the
    rendered training data (tests). Returns the written safetensors path (None with
    ``--featurize-only``)."""
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    log = jsonl_logger(work)

    dcfg, data, scene, objects = _load_sources(args, log, data, scene)
    cfg = CompactConfig(size=args.size, backbone=args.backbone, conse_weight=0.0)
    net = build_net(cfg)
    te = TextEncoder()
    if hasattr(net, "init_text"):  # effnet_lite2 keeps its ConSE texts (unused at conse_weight 0)
        net.init_text(te)
    t0 = time.time()
    folder = featurize(args, net, data, scene, log)
    t_feat = time.time() - t0
    if args.featurize_only:
        return None
    feat, obj = load_features(folder)
    log("features", crops=int(len(feat)), dims=int(feat.shape[1]), folder=str(folder))
    classes = object_classes() + (list(STRUCTURE_CLASSES) if scene is not None else [])
    held = None
    if args.holdout_frac:
        h = holdout_split(obj, args.holdout_frac, args.seed + 11)
        held = (feat[h], obj[h])
        feat, obj = feat[~h], obj[~h]
        log("held out", crops=int(h.sum()), objects=int(len(np.unique(held[1]))))
    t1 = time.time()
    crit = train_head(net, feat, obj, objects, classes, te, args, log, held)
    t_head = time.time() - t1
    out = Path(args.out) / args.name
    save_weights(net, out, crit.log_t.exp().item(), crit.b.item(),
                 extra={**_backbone_provenance(cfg.backbone), "train_steps": args.steps, "batch": args.head_batch,
                        "train_seconds": round(t_head, 1), "featurize_seconds": round(t_feat, 1),
                        "feature_crops": int(len(feat)), "holdout_frac": args.holdout_frac,
                        "feature_key": folder.name, "data": json.dumps(dcfg.__dict__),
                        "command": "python -m core.train.compact_cached " + " ".join(getattr(args, "argv", []))})
    log(f"wrote {out}", bytes=out.stat().st_size)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
