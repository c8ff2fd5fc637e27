"""Where a trained CLIP3R fails: each stage on its own, on test rooms and on training rooms.

    python -m core.bench.clip3r_stages --weights W [--weights W2 ...] [--windows 40] [--json out.json]

The engine's Acc / Comp / ATE mix everything (keyframes, I2P, retrieval, L2W, PnP). This
measures the two networks separately with ground truth in place of everything else, with the
training code's own windows (:class:`core.train.clip3r_data.Clip3rWindows`, stride 2):

- **I2P, local geometry**: a 5-view window -> the keyframe's point map in its own camera
  frame. Depth AbsRel and delta < 1.25 of the keyframe after one median scale (a monocular
  window has no scale), on valid GT pixels.
- **L2W, registration**: 3 scene frames with their *GT* world points + 1 keyframe with its
  GT camera-frame points at a random scale -> its world points. Median point error as a
  fraction of the scene's mean depth (the unit L2W works in), and the fraction of pixels
  within 5 % / 10 % of it.

Rooms: the 5 test rooms (``suite``, never seen in training) and 3 training rooms (by name), all
prepared at the network size with F_oCLIP from the compact encoder on GT masks, as in
training (:func:`core.train.clip3r_data.prepare_room`). A model that is much better on the
training rooms than on the test rooms has overfitted; one that is poor on both is undertrained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["evaluate_stages", "i2p_depth_errors", "l2w_errors"]


def i2p_depth_errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Keyframe depth after a median scale: pred / gt ``(h, w, 3)`` camera-frame points, valid ``(h, w)``.
    -> ``{"absrel", "delta"}`` (delta = fraction with max(p/g, g/p) < 1.25)."""
    zp, zg = pred[..., 2][valid], gt[..., 2][valid]
    ok = (zg > 0) & np.isfinite(zp) & (zp > 1e-6)
    zp, zg = zp[ok], zg[ok]
    if len(zg) == 0:
        return {"absrel": float("nan"), "delta": float("nan")}
    zp = zp * (np.median(zg) / np.median(zp))
    r = np.maximum(zp / zg, zg / zp)
    return {"absrel": float(np.mean(np.abs(zp - zg) / zg)), "delta": float(np.mean(r < 1.25))}


def l2w_errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Registered keyframe vs GT world points ``(h, w, 3)`` in scene units (1 = the scene frames'
    mean depth). -> ``{"median", "within5", "within10"}``."""
    e = np.linalg.norm(pred - gt, axis=-1)[valid]
    if len(e) == 0:
        return {"median": float("nan"), "within5": float("nan"), "within10": float("nan")}
    return {"median": float(np.median(e)), "within5": float(np.mean(e < 0.05)), "within10": float(np.mean(e < 0.10))}


def _windows(rooms, mode: str, per_room: int, seed: int, num_scene: int, views: int, stride: int):
    from ..train.clip3r_data import Clip3rWindows

    ds = Clip3rWindows(rooms, mode, views=views if mode == "i2p" else num_scene + 1, num_scene=num_scene,
                       strides=(stride,), seed=seed)
    # the same windows for every model: evenly spread over each room
    by_room: dict[int, list[int]] = {}
    for i, (ri, _, _) in enumerate(ds.items):
        by_room.setdefault(ri, []).append(i)
    idx = [ids[j] for ids in by_room.values()
           for j in np.linspace(0, len(ids) - 1, min(per_room, len(ids))).astype(int)]
    return ds, idx


def evaluate_stages(model, rooms: Sequence, windows: int = 12, seed: int = 0, views: int = 5, stride: int = 2
                    ) -> dict:
    """One model on prepared rooms (``windows`` per room and stage) -> per-room I2P / L2W errors."""
    import torch

    from ..train.clip3r_data import collate

    R = model.cfg.num_scene_frames
    out: dict = {"rooms": {}}
    with torch.inference_mode():
        ds, idx = _windows(rooms, "i2p", windows, seed, R, views, stride)
        for i in idx:
            b = collate([ds[i]])
            k = int(b["keyframe"][0])
            tokens, grid = model.i2p.encode(b["images"])
            fused, _ = model.i2p.fuse(tokens, b["clip"], b["clip_valid"])
            pts, _ = model.i2p.decode(fused, grid, k)
            e = i2p_depth_errors(pts[0, k].float().numpy(), b["points"][0, k].numpy(), b["valid"][0, k].numpy())
            out["rooms"].setdefault(rooms[ds.items[i][0]].name, {"i2p": [], "l2w": []})["i2p"].append(e)
        ds, idx = _windows(rooms, "l2w", windows, seed, R, views, stride)
        for i in idx:
            b = collate([ds[i]])
            tokens, grid = model.i2p.encode(b["images"])
            _, delta = model.i2p.fuse(tokens, b["clip"], b["clip_valid"])
            o = model.l2w(tokens, b["points_in"], R, semantic=delta, void=b["void"], grid=grid, features="none")
            e = l2w_errors(o.points[0, R].float().numpy(), b["points"][0, R].numpy(), b["valid"][0, R].numpy())
            out["rooms"].setdefault(rooms[ds.items[i][0]].name, {"i2p": [], "l2w": []})["l2w"].append(e)
    for name, r in out["rooms"].items():
        r["i2p"] = {k: float(np.nanmedian([e[k] for e in r["i2p"]])) for k in ("absrel", "delta")}
        r["l2w"] = {k: float(np.nanmedian([e[k] for e in r["l2w"]])) for k in ("median", "within5", "within10")}
    return out


def _summary(res: dict, names: Sequence[str]) -> dict:
    rs = [res["rooms"][n] for n in names if n in res["rooms"]]
    return {"i2p_absrel": float(np.mean([r["i2p"]["absrel"] for r in rs])),
            "i2p_delta": float(np.mean([r["i2p"]["delta"] for r in rs])),
            "l2w_median": float(np.mean([r["l2w"]["median"] for r in rs])),
            "l2w_within10": float(np.mean([r["l2w"]["within10"] for r in rs]))}


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from ..geometry.clip3r_engine import foclip_encoder_id, foclip_encoder_path
    from ..models.clip3r import load_checkpoint
    from ..models.compact import ImageEncoder
    from ..train.clip3r_data import prepare_room
    from ..scenegen.suite import cached_scene, test_suite
    from ..train.ovs_rooms import find_training_rooms

    p = argparse.ArgumentParser(prog="python -m core.bench.clip3r_stages", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", action="append", required=True, help="CLIP3R safetensors (repeat to compare)")
    p.add_argument("--windows", type=int, default=12, help="windows per room and stage")
    p.add_argument("--train-rooms", nargs="*", default=["train_0_0", "train_0_1", "train_0_2"],
                   help="training rooms to measure too (by name; the first rooms of every training set)")
    p.add_argument("--compact-weights", default=None,
                   help="F_oCLIP encoder (default: the one the checkpoints record, else the shipped one)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    loaded = [load_checkpoint(w) for w in a.weights]
    models = [m.eval() for m, _ in loaded]
    size = tuple(models[0].cfg.img_size)
    # F_oCLIP from the image encoder the models were trained with (recorded in the checkpoints)
    ids = {foclip_encoder_id(meta) for _, meta in loaded}
    if a.compact_weights is None and len(ids) > 1:
        raise SystemExit(f"the checkpoints were trained on different F_oCLIP encoders {sorted(map(str, ids))}: "
                         "measure them separately or give --compact-weights")
    enc_path = Path(a.compact_weights) if a.compact_weights else foclip_encoder_path(next(iter(ids)))
    enc = ImageEncoder.from_pretrained(enc_path, device="cpu")
    print(f"F_oCLIP encoder: {enc_path or 'the shipped default'}", flush=True)
    t0 = time.perf_counter()
    test = [prepare_room(cached_scene(c), enc, size) for c in test_suite()]
    found = {json.loads((d / "scene.json").read_text())["config"]["name"]: d for d in find_training_rooms()}
    train = [prepare_room(found[n], enc, size) for n in a.train_rooms if n in found]
    print(f"prepared {len(test)} test + {len(train)} training rooms in {time.perf_counter() - t0:.0f} s", flush=True)
    res = {}
    print("\n| weights | rooms | I2P depth AbsRel | I2P delta<1.25 | L2W median error (scene units) | L2W within 10 % |")
    print("|---|---|---|---|---|---|")
    for w, m in zip(a.weights, models):
        r = evaluate_stages(m, test + train, a.windows)
        r["test"] = _summary(r, [x.name for x in test])
        r["train"] = _summary(r, [x.name for x in train])
        res[w] = r
        for split in ("test", "train"):
            s = r[split]
            print(f"| {Path(w).parent.name}/{Path(w).name} | {split} | {s['i2p_absrel']:.3f} | {s['i2p_delta']:.3f} | "
                  f"{s['l2w_median']:.3f} | {s['l2w_within10']:.3f} |", flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
