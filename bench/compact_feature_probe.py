"""Frozen-feature probe of the compact encoder's COCO backbone: which input size and pooling
carry the most class signal, measured in minutes instead of a 22-minute head training.

    nice .venv/bin/python bench/compact_feature_probe.py --sizes 160 256 320 [--variants base base+max]

For each input size the shipped backbone (``core.models.pretrained.centernet``) is run once on
un-augmented crops: 8 views of every labelled training-library model (the compact training
renders, ``DataConfig("train", 48, 8, 128, 0)``, mask channel, noise background) and the zero-shot
test views (``core.train.compact_eval.EVAL_DATA``). Its maps are pooled in several ways
(whole-crop mean, mask-weighted mean, mask max, 2x2 mask grid, the COCO class heatmap); a head
(LayerNorm, dropout 0.2, 512 hidden, 384 out) is trained on the cached features for 1,500 steps
(softmax over the training classes' prompt embeddings, temperature 1/20) with two seeds, and
scored like ``compact_eval`` (view and object top-1, 38 classes). Features are cached in
``--work`` per size. The probe has no augmentation and no room crops, so it ranks settings;
it does not predict the trained encoder's numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.models.compact.centernet_net import masked_mean
from core.models.compact.preprocess import preprocess
from core.models.pretrained.centernet import CenterNetBackbone
from core.semantics.text_encoder import TextEncoder
from core.train.compact_aug import eval_crop
from core.train.compact_data import DataConfig, build_dataset, load_dataset
from core.train.compact_eval import EVAL_DATA, eval_crops, evaluate

TRAIN_DATA = DataConfig("train", 48, 8, 128, 0)  # the compact training's renders
BASE = ["e1_mean", "e1_mm", "head_mean", "head_mm", "c11_mm"]  # what CenterNetCompactNet pools
VARIANTS = {"base": BASE, "base+max": BASE + ["e1_max", "head_max"], "base+kp": BASE + ["kp_max", "kp_mm"],
            "base+grid": BASE + ["e1_grid"], "base+c11max": BASE + ["c11_max", "c11_grid"]}


def masked_max(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` max over the cells whose mask weight exceeds 0.25 -> ``(B, C)``."""
    w = F.interpolate(w, size=f.shape[2:], mode="area")
    return (f * (w > 0.25) + (w <= 0.25) * -1e4).amax((2, 3)).clamp_min(-50)


def masked_grid(f: torch.Tensor, w: torch.Tensor, g: int = 2) -> torch.Tensor:
    """Mask-weighted mean in a ``g x g`` grid -> ``(B, C * g * g)``."""
    w = F.interpolate(w, size=f.shape[2:], mode="area")
    return (F.adaptive_avg_pool2d(f * w, g) / F.adaptive_avg_pool2d(w, g).clamp_min(1e-4)).flatten(1)


def pooled_features(bb: CenterNetBackbone, crops: Sequence[np.ndarray], masks, size: int) -> dict[str, np.ndarray]:
    """Every pooling of every map, ``{name: (N, C)}``."""
    out: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(crops), 64):
        x = preprocess(crops[i:i + 64], masks[i:i + 64], size)
        rgb = (x[:, :3] * 0.25 + 0.5).clamp(0, 1) * 255.0
        w = (x[:, 3:4] + 1) * 0.5
        with torch.no_grad():
            o = bb(rgb)
        d = {"e1_mean": o["e1"].mean((2, 3)), "e1_mm": masked_mean(o["e1"], w), "head_mean": o["head"].mean((2, 3)),
             "head_mm": masked_mean(o["head"], w), "c11_mm": masked_mean(o["c11"], w),
             "e1_max": masked_max(o["e1"], w), "head_max": masked_max(o["head"], w),
             "c11_max": masked_max(o["c11"], w), "kp_max": masked_max(o["keypoints"], w),
             "kp_mm": masked_mean(o["keypoints"], w), "e1_grid": masked_grid(o["e1"], w),
             "c11_grid": masked_grid(o["c11"], w)}
        for k, v in d.items():
            out.setdefault(k, []).append(v.numpy().astype(np.float32))
    return {k: np.concatenate(v) for k, v in out.items()}


def extract(size: int, work: Path, views: int = 8) -> Path:
    """Cache ``probe_<size>.npz`` (``tr_*`` / ``te_*`` features, ``tr_obj``, ``te_obj``) and the object tables."""
    path = work / f"probe_{size}.npz"
    if path.exists():
        return path
    bb = CenterNetBackbone(outputs=("c11", "e1", "head", "keypoints")).eval()
    t = time.time()
    te = load_dataset(build_dataset(EVAL_DATA))
    c, m = eval_crops(te.rgba, "mask")
    ft = pooled_features(bb, c, m, size)
    tr = load_dataset(build_dataset(TRAIN_DATA))
    labelled = np.array([tr.objects[o]["class"] is not None for o in tr.obj])
    idx = np.array([i for o in np.unique(tr.obj[labelled]) for i in np.nonzero(tr.obj == o)[0][:views]])
    crops, masks = zip(*(eval_crop(tr.rgba[i], np.random.default_rng([7, int(i)]), 0.1, "noise") for i in idx))
    ftr = pooled_features(bb, list(crops), list(masks), size)
    print(f"size {size}: {len(idx)} training crops, {len(c)} test crops, {time.time() - t:.0f} s", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{"te_" + k: v for k, v in ft.items()}, **{"tr_" + k: v for k, v in ftr.items()},
             tr_obj=tr.obj[idx], te_obj=te.obj)
    (work / "objects.json").write_text(json.dumps({"tr": tr.objects, "te": te.objects}))
    return path


def probe(D: dict[str, np.ndarray], objects: list[dict], keys: Sequence[str], text: TextEncoder, test,
          seed: int = 0, steps: int = 1500) -> tuple:
    """Train a head on the cached features ``keys`` of ``D`` (``extract``'s arrays; ``objects``: the
    training object table); -> (view top-1, object top-1) on the test views."""
    names = [objects[o]["class"] for o in D["tr_obj"]]
    classes = sorted(set(names))
    y = torch.tensor([classes.index(c) for c in names])
    T = torch.from_numpy(text.encode_prompts(classes))
    Xtr = torch.from_numpy(np.concatenate([D["tr_" + k] for k in keys], 1))
    Xte = torch.from_numpy(np.concatenate([D["te_" + k] for k in keys], 1))
    torch.manual_seed(seed)
    n = Xtr.shape[1]
    net = torch.nn.Sequential(torch.nn.LayerNorm(n), torch.nn.Dropout(0.2), torch.nn.Linear(n, 512), torch.nn.GELU(),
                              torch.nn.Linear(512, 384))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        b = torch.randint(0, len(Xtr), (256,), generator=g)
        loss = F.cross_entropy(20 * F.normalize(net(Xtr[b]), dim=-1) @ T.T, y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        emb = F.normalize(net(Xte), dim=-1).numpy()
    r = evaluate(None, text, test.rgba, test.obj, test.objects, "mask", emb=emb)
    return r["view_top1"], r["object_top1"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 256])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "ov3r" / "compact_probe"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    text, test = TextEncoder(), load_dataset(build_dataset(EVAL_DATA))
    rows = []
    for size in a.sizes:
        path = extract(size, Path(a.work))
        D = dict(np.load(path))  # read once: every variant and seed trains on these arrays
        objects = json.loads((path.parent / "objects.json").read_text())["tr"]
        for name in a.variants:
            rs = [probe(D, objects, VARIANTS[name], text, test, seed=s) for s in range(a.seeds)]
            view, obj = np.mean(rs, 0)
            rows.append({"size": size, "variant": name, "view_top1": float(view), "object_top1": float(obj),
                         "per_seed": [list(map(float, r)) for r in rs]})
            print(f"size {size} {name:12s} view {view:.3f} object {obj:.3f} (seeds {rs})", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
