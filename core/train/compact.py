"""Train the compact image encoder into the frozen all-MiniLM-L6-v2 text space.

    python -m core.train.compact --out core/models/compact/weights --epochs 20 --steps 100

Recipe: renders of the training libraries (:mod:`core.train.compact_data`; never the
test library), augmented on the fly (:mod:`core.train.compact_aug`); a locked text tower
(:class:`core.semantics.text_encoder.TextEncoder`) gives, per class, the normalised mean
of several prompt templates and, per model, the embedding of its catalog name; the
paper's sigmoid loss L_sim (learnable t, b) over every image x text pair of the batch,
where the texts are all class prompts plus the batch's catalog names. Positives: the
image's class and its own name; a different name of the same class is ignored (weight 0,
synonym smoothing); unlabelled models only train against names. Class-balanced sampling.

Resumable: a checkpoint (``torch.save`` of tensors / plain values, loaded with
``weights_only=True``) is written every epoch under ``--work-dir``; ``--resume`` continues.
The final weights go to ``<out>/compact_v1.safetensors`` (fp16).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..scenegen.splits import TEST_LIBRARIES
from ..scenegen.taxonomy import CLASSES, STRUCTURE_CLASSES
from ..cache import cache_dir
from ..models.compact.encoder import save_weights
from ..hashing import file_sha256
from ..models.compact.encoder import load_trainable
from ..models.pretrained.centernet import BACKBONE_WEIGHTS
from ..models.compact.build import build_net
from ..models.compact.net import CompactConfig, SigmoidLoss
from ..semantics.text_encoder import TextEncoder
from .compact_aug import augment, augment_context, background_bank
from .compact_data import CompactData, DataConfig, build_dataset, load_dataset

__all__ = ["TEMPLATES", "NAME_TEMPLATES", "jsonl_logger", "object_classes", "text_targets", "main", "train"]

TEMPLATES = ["This is a photo of a {}", "a photo of a {}", "a {} in a room", "a 3D render of a {}",
             "a picture of the {}", "a {}"]
NAME_TEMPLATES = ["This is a photo of a {}", "a photo of a {}"]


def object_classes() -> List[str]:
    """Every object class of the taxonomy (no structure, no ``unlabeled``)."""
    return [c for c in CLASSES if c != "unlabeled" and c not in STRUCTURE_CLASSES]


class _Sampler:
    """Class-balanced sampling of (object, view): class mass ~ (#objects)^alpha, unlabelled
    models get ``unlabelled_frac`` of the draws."""

    def __init__(self, obj: np.ndarray, objects: List[Dict], alpha: float = 0.3, unlabelled_frac: float = 0.15,
                 seed: int = 0) -> None:
        self.views: Dict[int, np.ndarray] = {}
        for o in np.unique(obj):
            self.views[int(o)] = np.nonzero(obj == o)[0]
        ids = np.array(sorted(self.views))
        cls = [objects[i]["class"] for i in ids]
        count: Dict[Optional[str], int] = {}
        for c in cls:
            count[c] = count.get(c, 0) + 1
        w = np.array([0.0 if c is None else count[c] ** (alpha - 1.0) for c in cls])
        w = w / w.sum() * (1 - unlabelled_frac) if w.sum() > 0 else w
        n_un = sum(1 for c in cls if c is None)
        if n_un:
            w = w + np.array([unlabelled_frac / n_un if c is None else 0.0 for c in cls])
        self.ids, self.p = ids, w / w.sum()
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int) -> np.ndarray:
        objs = self.rng.choice(self.ids, size=n, p=self.p)
        return np.array([self.views[int(o)][self.rng.integers(len(self.views[int(o)]))] for o in objs])


def _targets(batch_obj: np.ndarray, objects: List[Dict], classes: List[str], name_key: List[str]):
    """Columns = classes + unique names of the batch. Returns (name list, targets (B, T), weights (B, T))."""
    names = list(dict.fromkeys(name_key[o] for o in batch_obj))
    col = {n: len(classes) + j for j, n in enumerate(names)}
    cidx = {c: i for i, c in enumerate(classes)}
    B, T = len(batch_obj), len(classes) + len(names)
    tgt = torch.zeros(B, T)
    wts = torch.ones(B, T)
    name_cls = {name_key[i]: objects[i]["class"] for i in range(len(objects))}
    for r, o in enumerate(batch_obj):
        c = objects[o]["class"]
        if c is None:
            wts[r, :len(classes)] = 0.0
        else:
            tgt[r, cidx[c]] = 1.0
            for n in names:  # same class, other name: a synonym, not a negative
                if name_cls.get(n) == c:
                    wts[r, col[n]] = 0.0
        tgt[r, col[name_key[o]]] = 1.0
        wts[r, col[name_key[o]]] = 1.0
    return names, tgt, wts


def jsonl_logger(work: Path):
    """``log(msg, **values)``: one JSON line in ``<work>/train_log.jsonl`` (time-stamped) and stderr."""
    log_f = open(work / "train_log.jsonl", "a")

    def log(msg: str, **kw) -> None:
        log_f.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "msg": msg, **kw}) + "\n")
        log_f.flush()
        print(msg, kw if kw else "", file=sys.stderr, flush=True)

    return log


def text_targets(te: TextEncoder, classes: List[str], objects: List[Dict]):
    """The locked text tower's side of L_sim: ``class_emb (C, D)`` (prompt-template means per class),
    ``name_key`` (each object's normalised catalog name) and ``name_emb`` {name: (D,)}."""
    class_emb = torch.from_numpy(te.encode_prompts(classes, TEMPLATES))
    name_key = [o["name"].strip().lower() for o in objects]
    uniq = sorted(set(name_key))
    name_emb_np = te.encode_prompts(uniq, NAME_TEMPLATES)
    return class_emb, name_key, {n: torch.from_numpy(name_emb_np[i]) for i, n in enumerate(uniq)}


def training_rooms(n: int) -> List[Path]:
    """The rendered training rooms the in-scene crops come from: the first ``n`` rooms of CLIP3R's
    training data (``core.train.clip3r_data.room_configs``: 224x168, 40 frames at 4 fps, 8
    samples; random layouts that do not generate are skipped), cached."""
    from ..scenegen.suite import cached_scene
    from .clip3r_data import Clip3rDataConfig, room_configs

    return [cached_scene(c) for c in room_configs(Clip3rDataConfig(rooms=n))]


def _backbone_provenance(backbone: str) -> Dict[str, str]:
    """The frozen backbone's file hash for the weights' metadata (pretrained backbones only)."""
    if backbone == "centernet":
        return {"backbone_sha256": file_sha256(BACKBONE_WEIGHTS)}
    if backbone == "effnet_lite2":
        from ..models.pretrained.efficientnet_lite import backbone_weights_path

        return {"backbone_sha256": file_sha256(backbone_weights_path())}
    return {}


def train(args: argparse.Namespace, data: Optional[CompactData] = None, scene=None) -> Path:
    """Run the recipe of ``args`` (see :func:`build_parser`); ``data`` overrides the rendered
    training split, ``scene`` the in-scene crops (tests). Returns the written safetensors path.

    With ``--scene-rooms N`` (or ``scene``), ``--scene-frac`` of every batch are in-scene crops
    of rendered training rooms (:mod:`core.train.compact_scene_data`), and the class texts
    include the structure classes (wall, floor, ceiling, door, window)."""
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    log = jsonl_logger(work)

    dcfg = DataConfig("train", args.views, args.views_unlabelled, 128, args.data_seed)
    if data is None:
        data = load_dataset(build_dataset(dcfg, workers=args.render_workers, log=log))
    libs = {o["library"] for o in data.objects}
    assert not (libs & set(TEST_LIBRARIES)), f"training data holds test libraries {libs & set(TEST_LIBRARIES)}"
    log("data", views=int(len(data.rgba)), objects=int(len(np.unique(data.obj))), libraries=sorted(libs))

    if scene is None and getattr(args, "scene_rooms", 0):
        from .compact_scene_data import build_scene_crops

        scene = build_scene_crops(training_rooms(args.scene_rooms), log=log)
    objects = list(data.objects)
    scene_sampler = None
    if scene is not None and len(scene.obj):
        assert not ({o["library"] for o in scene.objects} & set(TEST_LIBRARIES)), "scene crops hold a test library"
        offset = len(objects)
        objects += scene.objects
        scene_obj = scene.obj.astype(np.int64) + offset
        scene_sampler = _Sampler(scene_obj, objects, args.alpha, 0.0, args.seed + 7)
        log("scene crops", crops=int(len(scene.obj)), instances=len(scene.objects))

    te = TextEncoder()
    classes = object_classes() + (list(STRUCTURE_CLASSES) if scene_sampler is not None else [])
    class_emb, name_key, name_emb = text_targets(te, classes, objects)

    cfg = CompactConfig(size=args.size, backbone=args.backbone)
    net = build_net(cfg)
    if hasattr(net, "init_text"):  # fixed text embeddings the net keeps (effnet_lite2's ConSE)
        net.init_text(te)
    crit = SigmoidLoss()
    params = [p for p in net.parameters() if p.requires_grad] + list(crit.parameters())
    state = getattr(net, "trainable_state_dict", net.state_dict)  # a frozen shipped backbone is not saved
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.wd)
    total = args.epochs * args.steps
    warm = max(1, int(0.03 * total)) if not args.time_budget_min else args.warmup

    budget = args.time_budget_min * 60.0 if args.time_budget_min else 0.0

    def progress(step: int, seconds: float) -> float:
        """Fraction of the schedule done: by steps, or by training seconds with a time budget."""
        return min(1.0, seconds / budget) if budget else min(1.0, step / max(1, total))

    def lr_at(step: int, seconds: float = 0.0) -> float:
        if step < warm:
            return args.lr * (step + 1) / warm
        p = progress(step, seconds)
        if not budget:
            p = min(1.0, (step - warm) / max(1, total - warm))
        return args.lr * 0.5 * (1 + math.cos(math.pi * p))

    sampler = _Sampler(data.obj, data.objects, args.alpha, args.unlabelled_frac, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    start_epoch, step, t_spent = 0, 0, 0.0
    ckpt = work / "checkpoint.pt"
    if args.init and not (args.resume and ckpt.exists()):
        st = torch.load(args.init, map_location="cpu", weights_only=True)
        load_trainable(net, st["net"], args.init)
        crit.load_state_dict(st["loss"])
        log(f"initialised from {args.init} (step {int(st['step'])}); fresh optimiser and schedule")
    if args.resume and ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=True)
        load_trainable(net, st["net"], ckpt)
        crit.load_state_dict(st["loss"])
        opt.load_state_dict(st["opt"])
        start_epoch, step, t_spent = int(st["epoch"]), int(st["step"]), float(st["seconds"])
        sampler.rng = np.random.default_rng([args.seed, start_epoch])
        rng = np.random.default_rng([args.seed + 1, start_epoch])
        torch.set_rng_state(st["torch_rng"])
        log(f"resumed from epoch {start_epoch}", step=step)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    pool_n = min(2048, len(data.rgba))
    epoch = start_epoch
    while (epoch < args.epochs) if not budget else (t_spent < budget):
        net.train()
        t0 = time.time()
        pool = data.rgba[rng.choice(len(data.rgba), size=pool_n, replace=False)]
        torch.set_num_threads(1)
        bank = background_bank(rng, data.rgba.shape[1], args.backgrounds, pool)
        torch.set_num_threads(args.threads)
        it = range(args.steps)
        n_ep = "?" if budget else args.epochs
        bar = tqdm(it, desc=f"epoch {epoch + 1}/{n_ep}", leave=False, file=sys.stderr) if tqdm else it
        run_loss, run_acc, n_acc, n_steps = 0.0, 0.0, 0, 0
        for _ in bar:
            if budget and t_spent + time.time() - t0 >= budget:
                break
            n_scene = int(round(args.batch * args.scene_frac)) if scene_sampler is not None else 0
            idx = sampler.draw(args.batch - n_scene)
            torch.set_num_threads(1)  # tiny per-sample ops: threads only add overhead
            xs = [augment(data.rgba[i], rng, cfg.size, pool, bank) for i in idx]
            bobj = data.obj[idx]
            if n_scene:
                sidx = scene_sampler.draw(n_scene)
                xs += [augment_context(scene.rgb[i], scene.mask[i], rng, cfg.size) for i in sidx]
                bobj = np.concatenate([bobj, scene_obj[sidx]])
            x = torch.stack(xs)
            torch.set_num_threads(args.threads)
            names, tgt, wts = _targets(bobj, objects, classes, name_key)
            txt = torch.cat([class_emb, torch.stack([name_emb[n] for n in names])])
            for g in opt.param_groups:
                g["lr"] = lr_at(step, t_spent + time.time() - t0)
            emb = net(x)
            loss = crit(emb, txt, tgt, wts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            with torch.no_grad():
                lab = tgt[:, :len(classes)].sum(1) > 0
                if lab.any():
                    pred = (emb[lab] @ class_emb.T).argmax(1)
                    run_acc += float((tgt[lab, :len(classes)].argmax(1) == pred).float().sum())
                    n_acc += int(lab.sum())
            run_loss += loss.item()
            n_steps += 1
            if tqdm:
                bar.set_postfix(loss=f"{loss.item():.3f}", t=f"{crit.log_t.exp().item():.1f}", b=f"{crit.b.item():.1f}")
        t_spent += time.time() - t0
        epoch += 1
        log(f"epoch {epoch}/{n_ep}", step=step, loss=run_loss / max(n_steps, 1),
            train_class_acc=run_acc / max(n_acc, 1), t=crit.log_t.exp().item(), b=crit.b.item(),
            lr=lr_at(step, t_spent), seconds=round(t_spent, 1))
        tmp = work / "checkpoint.tmp.pt"
        torch.save({"net": state(), "loss": crit.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                    "step": step, "seconds": t_spent, "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt)
    out = Path(args.out) / args.name
    save_weights(net, out, crit.log_t.exp().item(), crit.b.item(),
                 extra={**_backbone_provenance(cfg.backbone),
                        "train_steps": step, "train_seconds": round(t_spent, 1), "batch": args.batch,
                        "data": json.dumps(dcfg.__dict__),
                        "command": "python -m core.train.compact " + " ".join(getattr(args, "argv", []))})
    log(f"wrote {out}", bytes=out.stat().st_size, seconds=round(t_spent, 1))
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core.train.compact", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models" / "compact" / "weights"))
    ap.add_argument("--name", default="compact_v1.safetensors")
    ap.add_argument("--work-dir", default=str(cache_dir("compact_runs", "v1")))
    ap.add_argument("--resume", action="store_true", help="continue from <work-dir>/checkpoint.pt")
    ap.add_argument("--init", default=None, help="start from the weights of another run's checkpoint.pt "
                    "(new optimiser and schedule: a second, fine-tuning stage)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100, help="steps per epoch")
    ap.add_argument("--time-budget-min", type=float, default=0.0,
                    help="train for this many minutes (cosine schedule over time) instead of --epochs")
    ap.add_argument("--warmup", type=int, default=60, help="warm-up steps with --time-budget-min")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--size", type=int, default=96, help="input crop size (a multiple of 32 for centernet)")
    ap.add_argument("--backbone", default="resnet", choices=["resnet", "centernet", "effnet_lite2"],
                    help="resnet: small CNN from scratch; centernet: the shipped frozen COCO backbone + trained head; "
                    "effnet_lite2: the installed frozen ImageNet EfficientNet-Lite2 + trained head + ConSE")
    ap.add_argument("--alpha", type=float, default=0.3, help="class mass ~ (#objects)^alpha")
    ap.add_argument("--unlabelled-frac", type=float, default=0.15)
    ap.add_argument("--views", type=int, default=48, help="rendered views per labelled training model")
    ap.add_argument("--views-unlabelled", type=int, default=8)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--render-workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    ap.add_argument("--backgrounds", type=int, default=384, help="random backgrounds drawn per epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scene-rooms", type=int, default=0,
                    help="in-scene crops from this many rendered training rooms (0 = object views only)")
    ap.add_argument("--scene-frac", type=float, default=0.4, help="fraction of each batch from the in-scene crops")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
