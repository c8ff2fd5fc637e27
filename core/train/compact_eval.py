"""Zero-shot evaluation of the compact image encoder on the held-out test library.

    python -m core.train.compact_eval [--weights PATH] [--out report.json]

Test set: every model of the test library (``BlendSwap-CC-0``, never used in training)
that has a taxonomy class, rendered from 8 random views (:mod:`core.train.compact_data`,
``split="test"``, seed 1), composited over a random background and cropped to the
object's box + 10 % (:func:`core.train.compact_aug.eval_crop`). Each crop is encoded
(with its mask, without, or as a masked crop) and classified by the nearest text
embedding among the classes present, prompt ``"This is a photo of a {}"`` (the
benchmark's). Reported: view-level top-1, object-level top-1 (mean embedding over the
object's views), class-balanced accuracy, per class (objects, accuracy), chance = 1 / #classes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..semantics.text_encoder import PROMPT, TextEncoder
from .compact_aug import eval_crop
from .compact_data import DataConfig, build_dataset, load_dataset

__all__ = ["EVAL_DATA", "eval_crops", "evaluate", "save_fixture", "main"]

#: The evaluation renders: test library, 8 views per model, seed 1.
EVAL_DATA = DataConfig("test", views_labelled=8, views_unlabelled=0, res=128, seed=1)
#: The same renders of the validation library (``core.scenegen.validation_library``): for choosing settings.
VALIDATION_DATA = DataConfig("validation", views_labelled=8, views_unlabelled=0, res=128, seed=1)


def eval_crops(rgba: np.ndarray, mode: str = "mask", seed: int = 0):
    """Crops of every view: ``(list of (h,w,3) uint8, list of (h,w) bool masks | None)``.
    ``mode``: ``"mask"`` (crop + mask channel), ``"nomask"``, ``"masked"`` (background grey + mask)."""
    crops, masks = [], []
    for i, a in enumerate(rgba):
        c, m = eval_crop(a, np.random.default_rng([seed, i]), 0.1, "grey" if mode == "masked" else "noise")
        crops.append(c)
        masks.append(m)
    return crops, (None if mode == "nomask" else masks)


def evaluate(encoder, text: TextEncoder, rgba: np.ndarray, obj: np.ndarray, objects: List[Dict],
             mode: str = "mask", classes: Optional[Sequence[str]] = None,
             templates: Sequence[str] = (PROMPT,), emb: Optional[np.ndarray] = None) -> Dict:
    """Top-1 of ``encoder`` against class prompts. ``rgba (N,R,R,4) uint8``, ``obj (N,)`` object index;
    ``emb (N, 384)``: the views' embeddings when already computed (then ``encoder`` is unused)."""
    view_cls = [objects[o]["class"] for o in obj]
    if classes is None:
        classes = sorted({c for c in view_cls if c is not None})
    classes = list(classes)
    keep = np.array([c in classes for c in view_cls])
    rgba, obj = rgba[keep], obj[keep]
    y = np.array([classes.index(objects[o]["class"]) for o in obj])
    if emb is None:
        crops, masks = eval_crops(rgba, mode)
        emb = encoder.encode(crops, masks)
    else:
        emb = emb[keep]
    T = text.encode_prompts(classes, list(templates))
    pred_view = (emb @ T.T).argmax(1)
    objs = np.unique(obj)
    oemb = np.stack([emb[obj == o].mean(0) for o in objs])
    oy = np.array([y[obj == o][0] for o in objs])
    pred_obj = (oemb @ T.T).argmax(1)
    per_class = {}
    for k, c in enumerate(classes):
        sel = oy == k
        per_class[c] = {"objects": int(sel.sum()), "object_acc": float((pred_obj[sel] == k).mean()) if sel.any() else None,
                        "view_acc": float((pred_view[y == k] == k).mean()) if (y == k).any() else None}
    accs = [v["view_acc"] for v in per_class.values() if v["view_acc"] is not None]
    confusions: Dict[str, int] = {}
    for t_, p_ in zip(oy, pred_obj):
        if t_ != p_:
            key = f"{classes[t_]}->{classes[p_]}"
            confusions[key] = confusions.get(key, 0) + 1
    return {"mode": mode, "classes": len(classes), "objects": int(len(objs)), "views": int(len(y)),
            "chance": 1.0 / len(classes), "view_top1": float((pred_view == y).mean()),
            "object_top1": float((pred_obj == oy).mean()), "class_balanced_view_top1": float(np.mean(accs)),
            "templates": list(templates), "per_class": per_class,
            "top_confusions": dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:10])}


def save_fixture(path: Path, n: int = 8, size: int = 64) -> Path:
    """A tiny committed test set: view 0 of the first test model of each of the ``n`` most
    frequent test classes, cropped (mask, noise background), padded square, ``size`` px.
    Arrays: ``crops (n,size,size,3) uint8``, ``masks (n,size,size) bool``, ``labels (n,) str``,
    ``classes (C,) str`` (every class of the test set), ``ids (n,) str``."""
    from PIL import Image

    data = load_dataset(build_dataset(EVAL_DATA))
    counts: Dict[str, int] = {}
    for o in np.unique(data.obj):
        c = data.objects[o]["class"]
        counts[c] = counts.get(c, 0) + 1
    top = sorted(counts, key=lambda c: (-counts[c], c))[:n]
    crops, masks, labels, ids = [], [], [], []
    for c in top:
        o = min(i for i in np.unique(data.obj) if data.objects[i]["class"] == c)
        v = int(np.nonzero(data.obj == o)[0][0])
        crop, m = eval_crop(data.rgba[v], np.random.default_rng([0, v]), 0.1, "noise")
        h, w = m.shape
        s = max(h, w)
        sq = np.full((s, s, 3), 128, np.uint8)
        sm = np.zeros((s, s), bool)
        y0, x0 = (s - h) // 2, (s - w) // 2
        sq[y0:y0 + h, x0:x0 + w], sm[y0:y0 + h, x0:x0 + w] = crop, m
        crops.append(np.asarray(Image.fromarray(sq).resize((size, size), Image.BILINEAR)))
        masks.append(np.asarray(Image.fromarray(sm.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)) > 127)
        labels.append(c)
        ids.append(data.objects[o]["id"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, crops=np.stack(crops), masks=np.stack(masks), labels=np.array(labels),
                        classes=np.array(sorted(c for c in counts if c is not None)), ids=np.array(ids))
    return path


def _table(r: Dict) -> str:
    lines = ["| class | objects | object top-1 | view top-1 |", "|---|---:|---:|---:|"]
    for c, v in sorted(r["per_class"].items(), key=lambda kv: -kv[1]["objects"]):
        lines.append(f"| {c} | {v['objects']} | {v['object_acc']:.2f} | {v['view_acc']:.2f} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.train.compact_eval", description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="safetensors (default: the shipped compact_v8)")
    ap.add_argument("--out", default=None, help="write the JSON report here")
    ap.add_argument("--modes", default="mask,nomask,masked")
    ap.add_argument("--templates", default=None, help="'|'-separated prompt templates (default: the benchmark's)")
    ap.add_argument("--table", action="store_true", help="print the per-class table (markdown)")
    ap.add_argument("--tta", action="store_true", help="average the crop and its mirror image")
    ap.add_argument("--save-fixture", default=None, help="write the tiny test fixture (npz) here and exit")
    ap.add_argument("--split", choices=["test", "validation"], default="test",
                    help="validation: Sweet Home 3D's default catalog (make validation-furniture), for choosing settings")
    a = ap.parse_args(argv)
    if a.save_fixture:
        print(save_fixture(Path(a.save_fixture)))
        return 0
    import torch

    from ..models.compact.encoder import DEFAULT_WEIGHTS, ImageEncoder

    torch.set_num_threads(max(1, min(8, torch.get_num_threads())))
    enc = ImageEncoder.from_pretrained(a.weights, device="cpu")
    enc.flip_tta = a.tta
    data_cfg = VALIDATION_DATA if a.split == "validation" else EVAL_DATA
    data = load_dataset(build_dataset(data_cfg))
    te = TextEncoder()
    templates = a.templates.split("|") if a.templates else [PROMPT]
    report = {"weights": str(a.weights or DEFAULT_WEIGHTS.name), "data": data_cfg.__dict__, "results": []}
    counts: Dict[str, int] = {}
    for o in np.unique(data.obj):
        c = data.objects[o]["class"]
        counts[c] = counts.get(c, 0) + 1
    from ..scenegen.splits import models_per_class

    seen = set(models_per_class(test=False))
    present = sorted(c for c in counts if c is not None)
    subsets = {"all classes present": present,
               f"classes with >= 2 {a.split} models": [c for c in present if counts[c] >= 2],
               "classes also in training": [c for c in present if c in seen]}
    report["tta"] = a.tta
    for mode in a.modes.split(","):
        crops, masks = eval_crops(data.rgba, mode)
        emb = enc.encode(crops, masks)
        for sname, classes in subsets.items():
            r = evaluate(enc, te, data.rgba, data.obj, data.objects, mode, classes=classes, templates=templates,
                         emb=emb)
            r["subset"] = sname
            report["results"].append(r)
            print(f"{mode:7s} {sname:30s} classes={r['classes']} objects={r['objects']} views={r['views']} "
                  f"chance={r['chance']:.3f} view_top1={r['view_top1']:.3f} object_top1={r['object_top1']:.3f} "
                  f"class_balanced={r['class_balanced_view_top1']:.3f}", flush=True)
            if a.table and mode == "mask" and sname == "all classes present":
                print(_table(r))
                print("confusions:", r["top_confusions"])
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
