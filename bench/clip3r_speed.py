"""CLIP3R throughput on this machine, side by side with SLAM3R's reference implementation.

    nice .venv/bin/python bench/clip3r_speed.py --slam3r /tmp/slam3r_rec/src \\
        --slam3r-python /tmp/slam3r_rec/venv/bin/python [--runs 5 --rounds 2 --threads 2]
    nice .venv/bin/python bench/clip3r_speed.py --small-only

1. ``paper`` config, 224 x 224, random weights (no checkpoint needed), in one run:
   - I2P on a 5-view window (encoding the 5 frames + the keyframe / support decoders + heads),
     ours with F_oCLIP (the CLIP injection) and without; SLAM3R's ``Image2PointsModel`` with
     the same architecture (``recon.py``'s defaults), ``forward(views, ref_id=2)``;
   - L2W registering 1 keyframe against ``R`` scene frames (tokens pre-encoded, as in a stream):
     ours with the DPT CLIP3R-feature head (``features="register"``) and without
     (``features="none"``); SLAM3R's ``Local2WorldModel(need_encoder=False)``.
   SLAM3R runs in its own interpreter (``--slam3r-python``, its checkout on ``sys.path``; only its
   public classes are called) as a persistent subprocess, so the two are timed in alternating
   rounds under the same machine load. Medians over ``runs x rounds`` after a warm-up. Each
   precision of ``--precision`` (default ``fp32,bf16``) runs on both sides: bf16 = the same
   code under ``torch.autocast("cpu", torch.bfloat16)`` (~4x faster matrix products on CPUs
   with AVX512-BF16 / AMX; our point heads stay fp32).
2. ``small`` config (the project's trained one, default 160 x 224): keyframe windows per second
   of the engine's inner loop (one new frame encoded, an I2P window of ``window_incremental``
   frames decoded, the retrieval scorer over the scene buffer, L2W on ``R`` scene frames + the
   keyframe with CLIP3R features), random weights.

Prints a markdown table and the 1-minute load average before and after; ``--json`` writes it all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.models.clip3r import CLIP3R, get_config

# Runs inside SLAM3R's interpreter: builds its models from their public classes, then times on
# request ("i2p N" / "l2w N" lines on stdin -> one JSON line of seconds per run on stdout).
SLAM3R_SERVER = r"""
import json, sys, time, torch
src, threads, R = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, src)
torch.set_num_threads(threads)
import slam3r.utils.device as _d
class _NoRange:  # SLAM3R's NVTX ranges synchronise CUDA; there is no CUDA here
    def __init__(self, name): pass
    def __enter__(self): pass
    def __exit__(self, *a): pass
_d.MyNvtxRange = _NoRange
import slam3r.models as _m
_m.MyNvtxRange = _NoRange
from slam3r.models import Image2PointsModel, Local2WorldModel, inf
kw = dict(pos_embed='RoPE100', img_size=(224, 224), head_type='linear', output_mode='pts3d',
          depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), enc_embed_dim=1024, enc_depth=24,
          enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12,
          mv_dec1='MultiviewDecoderBlock_max', mv_dec2='MultiviewDecoderBlock_max', enc_minibatch=11)
torch.manual_seed(0)
i2p = Image2PointsModel(**kw).eval()
l2w = Local2WorldModel(**kw, need_encoder=False).eval()
ts = torch.tensor([[224, 224]])
imgs = torch.randn(5, 1, 3, 224, 224)
views = [dict(img=imgs[v], true_shape=ts) for v in range(5)]
with torch.no_grad():
    _, feats, poses = i2p._encode_multiview([dict(img=torch.randn(1, 3, 224, 224), true_shape=ts)
                                              for _ in range(R + 1)], normalize=False)
lviews = []
for v in range(R + 1):
    d = dict(img_tokens=feats[v], true_shape=ts, img_pos=poses[v])
    d['pts3d_world' if v < R else 'pts3d_cam'] = torch.randn(1, 224, 224, 3)
    lviews.append(d)
def run(kind):
    kind, _, prec = kind.partition('_')  # "i2p", "l2w", "i2p_bf16", "l2w_bf16"
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=prec == 'bf16'):
        t = time.perf_counter()
        if kind == 'i2p':
            i2p(views, ref_id=2)
        else:
            l2w(lviews, ref_ids=list(range(R)))
        return time.perf_counter() - t
for k in ('i2p', 'l2w', 'i2p_bf16', 'l2w_bf16'):
    run(k)  # warm-up
print('@@' + json.dumps({'ready': True, 'torch': torch.__version__}), flush=True)
for line in sys.stdin:
    kind, n = line.split()
    print('@@' + json.dumps([run(kind) for _ in range(int(n))]), flush=True)
"""


def load1() -> float:
    return os.getloadavg()[0]


class Slam3rProcess:
    def __init__(self, src: Path, python: str, threads: int, R: int) -> None:
        self.p = subprocess.Popen([python, "-c", SLAM3R_SERVER, str(src), str(threads), str(R)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._reply()

    def _reply(self):
        """The next ``@@``-prefixed JSON line (SLAM3R prints its own messages to stdout too)."""
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("the SLAM3R process ended (see its messages above)")
            if line.startswith("@@"):
                return json.loads(line[2:])
            print(f"[slam3r] {line.rstrip()}", file=sys.stderr)

    def time(self, kind: str, n: int) -> list:
        self.p.stdin.write(f"{kind} {n}\n")
        self.p.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait(timeout=60)


class Ours:
    """Our paper-config model with the same inputs as the SLAM3R server."""

    def __init__(self, R: int) -> None:
        torch.manual_seed(0)
        self.model = CLIP3R(get_config("paper")).eval()
        cfg = self.model.cfg
        with torch.no_grad():  # a trained (non-zero) injection, so its cost is the real one
            self.model.i2p.clip_injection.proj.weight.normal_(std=0.02)
        n = cfg.num_patches
        self.imgs = torch.randn(1, 5, 3, 224, 224)
        self.clip = torch.randn(1, 5, n, cfg.clip_dim)
        self.R = R
        with torch.inference_mode():
            self.tokens, _ = self.model.i2p.encode(torch.randn(1, R + 1, 3, 224, 224))
        self.pts = torch.randn(1, R + 1, 224, 224, 3)

    def run(self, kind: str) -> float:
        m = self.model
        bf16 = kind.endswith("_bf16")
        kind = kind.removesuffix("_bf16")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            t = time.perf_counter()
            if kind == "i2p":
                m.i2p(self.imgs, self.clip, keyframe=2)
            elif kind == "i2p_noclip":
                m.i2p(self.imgs, None, keyframe=2)
            elif kind == "l2w":  # as the engine streams: keyframe outputs only, features at stride 4
                m.l2w(self.tokens, self.pts, self.R, features="register", scene_outputs=False, feature_size=(56, 56))
            elif kind == "l2w_nofeat":
                m.l2w(self.tokens, self.pts, self.R, features="none", scene_outputs=False)
            return time.perf_counter() - t


def small_windows_per_s(img_size, window: int, buffer: int, runs: int, clip: bool = True, bf16: bool = False
                        ) -> dict:
    """The engine's per-keyframe work in the small config (random weights)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = _small_windows(img_size, window, buffer, runs, clip)
    out["precision"] = "bf16" if bf16 else "fp32"
    return out


def _small_windows(img_size, window: int, buffer: int, runs: int, clip: bool) -> dict:
    from core.models.clip3r import top_k_frames

    torch.manual_seed(0)
    model = CLIP3R(get_config("small", img_size=tuple(img_size), clip_injection=clip)).eval()
    cfg = model.cfg
    n, R = cfg.num_patches, cfg.num_scene_frames
    H, W = cfg.img_size
    total = window + runs + 2
    with torch.inference_mode():
        fr = model.encode_frames(torch.randn(1, total, 3, H, W),
                                 torch.randn(1, total, n, cfg.clip_dim) if clip else None)
        pts = torch.randn(1, R + 1, H, W, 3)
        times = {"encode": [], "i2p": [], "retrieval": [], "l2w": [], "total": []}
        for r in range(runs + 1):
            t0 = time.perf_counter()
            model.encode_frames(torch.randn(1, 1, 3, H, W), torch.randn(1, 1, n, cfg.clip_dim) if clip else None)
            t1 = time.perf_counter()
            ids = list(range(r, r + window))
            model.i2p.decode(fr.fused[:, ids], fr.grid, keyframe=window // 2)
            t2 = time.perf_counter()
            cand_ids = [i % total for i in range(buffer)]
            sc = model.i2p.retrieval_scores(fr.fused[:, r], fr.fused[:, cand_ids], fr.grid)
            ids = [cand_ids[int(i)] for i in top_k_frames(sc[0], R)] + [r]
            t3 = time.perf_counter()
            sem = None if fr.delta is None else fr.delta[:, ids]
            model.l2w(fr.tokens[:, ids], pts, R, semantic=sem, features="register", scene_outputs=False,
                      feature_size=(img_size[0] // 4, img_size[1] // 4))  # as the engine calls it
            t4 = time.perf_counter()
            if r == 0:
                continue  # warm-up
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"img_size": list(cfg.img_size), "window": window, "buffer": buffer, "clip_injection": clip,
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "median_s": med, "windows_per_s": 1.0 / med["total"]}


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slam3r", type=Path, help="SLAM3R checkout (the folder holding the slam3r package)")
    p.add_argument("--slam3r-python", default=None, help="interpreter with SLAM3R's dependencies")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scene-frames", type=int, default=5, help="R: scene frames per L2W registration")
    p.add_argument("--precision", default="fp32,bf16", help="comma list: fp32 and/or bf16 (CPU autocast, both sides)")
    p.add_argument("--small-only", action="store_true")
    p.add_argument("--small-size", default="160x224")
    p.add_argument("--small-runs", type=int, default=10)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    res: dict = {"threads": a.threads, "torch": torch.__version__, "load1_before": load1(),
                 "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"load average (1 min) before: {res['load1_before']:.2f}", flush=True)

    if not a.small_only:
        if a.slam3r is None:
            p.error("--slam3r is required (or --small-only)")
        py = a.slam3r_python or sys.executable
        t0 = time.perf_counter()
        theirs = Slam3rProcess(a.slam3r, py, a.threads, a.scene_frames)
        ours = Ours(a.scene_frames)
        precs = [p_ for p_ in a.precision.split(",") if p_]
        for pr in precs:
            for k in ("i2p", "i2p_noclip", "l2w", "l2w_nofeat"):
                ours.run(k + ("_bf16" if pr == "bf16" else ""))  # warm-up
        print(f"models ready in {time.perf_counter() - t0:.0f} s (SLAM3R torch {theirs.info['torch']})", flush=True)
        t: dict = {}
        loads = []
        for r in range(a.rounds):
            for pr in precs:
                sfx = "_bf16" if pr == "bf16" else ""
                for kind in ("i2p", "l2w"):
                    t.setdefault(f"slam3r_{kind}{sfx}", []).extend(theirs.time(kind + sfx, a.runs))
                    other = "noclip" if kind == "i2p" else "nofeat"
                    for _ in range(a.runs):
                        t.setdefault(f"ours_{kind}{sfx}", []).append(ours.run(kind + sfx))
                        t.setdefault(f"ours_{kind}_{other}{sfx}", []).append(ours.run(f"{kind}_{other}{sfx}"))
            loads.append(load1())
            print(f"round {r + 1}/{a.rounds} (load {loads[-1]:.2f}): " + ", ".join(
                f"{k} {statistics.median(v):.2f} s" for k, v in t.items()), flush=True)
        theirs.close()
        med = {k: statistics.median(v) for k, v in t.items()}
        res["paper"] = {"median_s": med, "runs": dict(t), "load1_rounds": loads, "scene_frames": a.scene_frames}
        print("\n| paper config, 224 px, CPU | precision | ours (CLIP3R) | ours without CLIP part | SLAM3R | "
              "SLAM3R / ours |")
        print("|---|---|---|---|---|---|")
        for pr in precs:
            sfx = "_bf16" if pr == "bf16" else ""
            oi, oin, si = med[f"ours_i2p{sfx}"], med[f"ours_i2p_noclip{sfx}"], med[f"slam3r_i2p{sfx}"]
            ol, oln, sl = med[f"ours_l2w{sfx}"], med[f"ours_l2w_nofeat{sfx}"], med[f"slam3r_l2w{sfx}"]
            res["paper"][f"speedup_{pr}"] = {"i2p": si / oi, "i2p_noclip": si / oin, "l2w": sl / ol,
                                             "l2w_nofeat": sl / oln, "i2p_plus_l2w": (si + sl) / (oi + ol)}
            print(f"| I2P, 5-view window (s) | {pr} | {_fmt(oi)} | {_fmt(oin)} | {_fmt(si)} | {si / oi:.2f}x "
                  f"({si / oin:.2f}x) |")
            print(f"| L2W, {a.scene_frames} scene frames + 1 keyframe (s) | {pr} | {_fmt(ol)} | {_fmt(oln)} | "
                  f"{_fmt(sl)} | {sl / ol:.2f}x ({sl / oln:.2f}x) |")
            print(f"| I2P + L2W (s) | {pr} | {_fmt(oi + ol)} | {_fmt(oin + oln)} | {_fmt(si + sl)} | "
                  f"{(si + sl) / (oi + ol):.2f}x |")
        del ours

    h, w = (int(v) for v in a.small_size.lower().split("x"))
    res["small"] = []
    print("\n| small config | precision | img | window | buffer | encode s | I2P s | retrieval s | L2W s | "
          "windows / s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pr in [p_ for p_ in a.precision.split(",") if p_]:
        for window in (get_config("small").window_incremental, 5):
            r = small_windows_per_s((h, w), window, get_config("small").buffer_size, a.small_runs, bf16=pr == "bf16")
            res["small"].append(r)
            m = r["median_s"]
            print(f"| small ({r['params_M']} M) | {pr} | {h}x{w} | {window} | {r['buffer']} | {_fmt(m['encode'])} | "
                  f"{_fmt(m['i2p'])} | {_fmt(m['retrieval'])} | {_fmt(m['l2w'])} | {r['windows_per_s']:.2f} |",
                  flush=True)
    res["load1_after"] = load1()
    print(f"\nload average (1 min) after: {res['load1_after']:.2f}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
