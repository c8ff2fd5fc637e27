"""Compact image encoder speed per crop, fp32 against bf16 autocast (no Blender, no pipeline).

    nice .venv/bin/python bench/encoder_speed.py [--weights W ...] [--crops 64] [--repeat 5] [--threads 2]

Encodes the same ``--crops`` crops (the held-out test fixture's, repeated) with each weights file
(default: compact_v4, the fusion's encoder, and the default compact_v8) at each precision; prints the median
milliseconds per crop and the bf16 embeddings' lowest cosine to fp32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.models.compact import DEFAULT_WEIGHTS, ImageEncoder  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "compact_test_crops.npz"


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", nargs="*", default=[str(DEFAULT_WEIGHTS.with_name(n)) for n in
                                                    ("compact_v4.safetensors",
                                                     DEFAULT_WEIGHTS.name)])
    p.add_argument("--crops", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    z = np.load(FIXTURE)
    k = -(-a.crops // len(z["crops"]))
    crops, masks = np.concatenate([z["crops"]] * k)[: a.crops], np.concatenate([z["masks"]] * k)[: a.crops]
    print(f"{a.crops} crops, {a.threads} threads, medians of {a.repeat}")
    print("| weights | input px | fp32 ms / crop | bf16 ms / crop | ratio | min cosine bf16 vs fp32 |")
    print("|---|---|---|---|---|---|")
    for w in a.weights:
        row, emb = [], []
        for precision in ("fp32", "bf16"):
            enc = ImageEncoder.from_pretrained(w, device="cpu", precision=precision)
            enc.encode(crops[:8], masks[:8])  # warm-up
            times = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                e = enc.encode(crops, masks)
                times.append(time.perf_counter() - t)
            row.append(statistics.median(times) / a.crops * 1000)
            emb.append(e)
        cos = float((emb[0] * emb[1]).sum(1).min())
        print(f"| {Path(w).name} | {enc.size} | {row[0]:.1f} | {row[1]:.1f} | {row[0] / row[1]:.2f}x | {cos:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
