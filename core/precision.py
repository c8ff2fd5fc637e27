"""Inference precision shared by the networks (CLIP3R, the compact image encoder).

``"auto"`` runs under bf16 autocast where the hardware has fast bf16 (CUDA; x86 CPUs with
AVX512-BF16 or AMX), else fp32. Measured on this project's 2-core AMD EPYC (AVX512-BF16):
CLIP3R ~2x, the compact encoder compact_v8 ~2x per crop (``bench/encoder_speed.py``, docs/experiments/history.md).
"""

from __future__ import annotations

from pathlib import Path

from .jobs import JobError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX-BF16 (bf16 matrix products ~4x fp32 there)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str, what: str = "CLIP3R"):
    """``(autocast dtype or None, name)`` for a setting ("auto" | "fp32" | "bf16" | "fp16") and a
    device type ("cpu" | "cuda"); a JobError naming ``what`` for an unsupported one."""
    import torch

    p = precision.lower()
    if p == "auto":
        if device == "cuda":
            p = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            p = "bf16" if cpu_has_fast_bf16() else "fp32"
    if p == "fp32":
        return None, p
    if p == "bf16":
        return torch.bfloat16, p
    if p == "fp16" and device == "cuda":
        return torch.float16, p
    raise JobError(f"unsupported {what} precision {precision!r} on {device} (fp32, bf16, fp16 on CUDA, auto)")
