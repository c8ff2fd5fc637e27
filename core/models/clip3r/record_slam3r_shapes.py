"""Record the parameter names and shapes of SLAM3R's public I2P and L2W models, and a tiny
parity fixture (random weights) for checking that our port computes what SLAM3R computes.

This is how ``tests/fixtures/slam3r_param_shapes.json.gz`` and
``tests/fixtures/slam3r_tiny_parity.safetensors`` were made; the tests of
:mod:`.slam3r_keys` check the mapping against them.

- Shapes: SLAM3R's public models are built from SLAM3R's own code on PyTorch's ``meta``
  device (no weights needed or read).
- Parity: a *tiny* I2P and L2W (32 px, patch 8, widths 32 / 24) with random weights
  (seeded, rounded to float16 so the file is small and exact), random inputs, and what
  SLAM3R's forward passes and retrieval score return for them. No SLAM3R weights involved.

Usage, with a local checkout of https://github.com/PKU-VCL-3DV/SLAM3R and an environment
that can import it (torch, numpy, einops, huggingface_hub, tqdm; keep it apart from the
project's own environment, e.g. a throwaway venv)::

    python core/models/clip3r/record_slam3r_shapes.py --slam3r /path/to/SLAM3R \\
        --out tests/fixtures/slam3r_param_shapes.json.gz \\
        --parity-out tests/fixtures/slam3r_tiny_parity.safetensors

The model arguments are those SLAM3R's ``recon.py`` uses for its public checkpoints
(``siyan824/slam3r_i2p`` and ``siyan824/slam3r_l2w``); the public L2W file is built with
``need_encoder=False`` (it reuses I2P's encoder tokens): its size, 922,557,296 bytes of
float32, matches that model and not the one with an encoder (the fixture records both
sizes). This script imports nothing from Ov3R, so it runs in SLAM3R's environment.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

COMMON = dict(
    pos_embed="RoPE100", img_size=(224, 224), head_type="linear", output_mode="pts3d",
    enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12,
    mv_dec1="MultiviewDecoderBlock_max", mv_dec2="MultiviewDecoderBlock_max",
)


def record(slam3r_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(slam3r_dir))
    import torch
    from slam3r.models import Image2PointsModel, Local2WorldModel, inf

    kw = dict(COMMON, depth_mode=("exp", -inf, inf), conf_mode=("exp", 1, inf))
    builds = {
        "i2p": (Image2PointsModel, dict(kw, enc_minibatch=11)),
        "l2w": (Local2WorldModel, dict(kw, enc_minibatch=11, need_encoder=False)),
        "l2w_need_encoder": (Local2WorldModel, dict(kw, enc_minibatch=11, need_encoder=True)),
    }
    out: dict[str, Any] = {}
    for name, (cls, args) in builds.items():
        with torch.device("meta"):
            model = cls(**args)
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        out[name] = shapes
        out[f"{name}_numel"] = int(sum(torch.Size(s).numel() for s in shapes.values()))
    try:
        commit = subprocess.run(["git", "-C", str(slam3r_dir), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit_file = slam3r_dir / "COMMIT"
        commit = commit_file.read_text().strip() if commit_file.is_file() else "unknown"
    out["source"] = {
        "repository": "PKU-VCL-3DV/SLAM3R",
        "commit": commit,
        "how": "slam3r.models.Image2PointsModel / Local2WorldModel built on the meta device with recon.py's "
               "arguments (need_encoder=False for the public L2W); state_dict() names and shapes",
        "public_file_bytes": {"slam3r_i2p": 2131831108, "slam3r_l2w": 922557296},
        "torch": torch.__version__,
    }
    return out


# the tiny parity models (our side: core.models.clip3r tests build the matching config)
TINY = dict(pos_embed="RoPE100", img_size=(32, 32), patch_size=8, head_type="linear", output_mode="pts3d",
            enc_embed_dim=32, enc_depth=1, enc_num_heads=2, dec_embed_dim=24, dec_depth=2, dec_num_heads=2)


def _no_cuda_ranges() -> None:
    # SLAM3R's forward wraps stages in NVTX ranges that call torch.cuda.synchronize(),
    # which fails on a CPU-only torch: replace them with no-ops (profiling only)
    from slam3r import models
    from slam3r.utils import device

    class _NoRange:
        def __init__(self, name: str) -> None:
            pass

        def __enter__(self) -> None:
            pass

        def __exit__(self, *exc) -> None:
            pass

    device.MyNvtxRange = _NoRange
    models.MyNvtxRange = _NoRange


def record_parity(slam3r_dir: Path, out: Path, seed: int = 0) -> None:
    sys.path.insert(0, str(slam3r_dir))
    import torch
    from safetensors.torch import save_file
    from slam3r.models import Image2PointsModel, Local2WorldModel, inf
    _no_cuda_ranges()

    torch.manual_seed(seed)
    kw = dict(TINY, depth_mode=("exp", -inf, inf), conf_mode=("exp", 1, inf))
    i2p = Image2PointsModel(**kw).eval()
    l2w = Local2WorldModel(**kw, need_encoder=False).eval()
    with torch.no_grad():
        for m in (i2p, l2w):
            for p in m.parameters():  # perturb so norms / biases are not at their trivial init
                p.copy_((p + 0.05 * torch.randn_like(p)).half().float())
    B, V, ref, S = 1, 3, 1, 32
    imgs = torch.randn(B, V, 3, S, S).half().float()
    pts = torch.randn(B, V, S, S, 3).half().float()
    true_shape = torch.tensor([[S, S]] * B)
    views = [dict(img=imgs[:, v], true_shape=true_shape) for v in range(V)]
    n = (S // TINY["patch_size"]) ** 2
    void = torch.zeros(B, V, n, dtype=torch.bool)
    void[:, 2, :3] = True  # a few void patches on the registered view
    with torch.no_grad():
        res = i2p(views, ref_id=ref)
        i2p_pts = torch.stack([r["pts3d"] if v == ref else r["pts3d_in_other_view"] for v, r in enumerate(res)], 1)
        i2p_conf = torch.stack([r["conf"] for r in res], 1)
        corr = i2p.get_corr_score(views, ref_id=0, depth=2).permute(1, 0, 2)  # (B, V-1, N)
        _, feats, poses = i2p._encode_multiview(views, normalize=False)
        lviews = []
        for v in range(V):
            d = dict(img_tokens=feats[v], true_shape=true_shape, img_pos=poses[v])
            d["pts3d_world" if v == 0 else "pts3d_cam"] = pts[:, v]
            d["patch_mask"] = void[:, v]
            lviews.append(d)
        res = l2w(lviews, ref_ids=[0])
        l2w_pts = torch.stack([r["pts3d"] if v == 0 else r["pts3d_in_other_view"] for v, r in enumerate(res)], 1)
        l2w_conf = torch.stack([r["conf"] for r in res], 1)
    tensors = {f"i2p.{k}": v.half() for k, v in i2p.state_dict().items()}
    tensors.update({f"l2w.{k}": v.half() for k, v in l2w.state_dict().items()})
    tensors.update({"in.images": imgs.half(), "in.points": pts.half(), "in.void": void.to(torch.uint8),
                    "out.i2p_points": i2p_pts, "out.i2p_conf": i2p_conf, "out.retrieval_patch_scores": corr,
                    "out.encoder_tokens": torch.stack(feats, 1), "out.l2w_points": l2w_pts,
                    "out.l2w_conf": l2w_conf})
    meta = {"slam3r_model_kwargs": json.dumps(TINY), "i2p_keyframe": str(ref), "l2w_num_scene": "1",
            "retrieval_depth": "2", "seed": str(seed), "note": "random weights, not SLAM3R's trained weights"}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out), metadata=meta)
    print(f"{out}: {len(tensors)} tensors")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slam3r", required=True, type=Path, help="local SLAM3R checkout (the folder holding slam3r/)")
    ap.add_argument("--out", required=True, type=Path, help="output .json.gz")
    ap.add_argument("--parity-out", type=Path, help="also write the tiny parity fixture (.safetensors)")
    args = ap.parse_args(argv)
    if args.parity_out:
        record_parity(args.slam3r.resolve(), args.parity_out)
    data = record(args.slam3r.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same models give byte-identical fixtures
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
        f.write(json.dumps(data, indent=0, sort_keys=True).encode())
    print(f"{args.out}: i2p {len(data['i2p'])} tensors ({data['i2p_numel']:,} values), "
          f"l2w {len(data['l2w'])} tensors ({data['l2w_numel']:,} values)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
