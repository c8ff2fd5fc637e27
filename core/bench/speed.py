"""End-to-end speed and peak memory of the worker on videos.

    python -m core.bench.speed VIDEO [VIDEO ...] [--engine sfm] [--max-side 640] [--semantics none]

Each run is a fresh worker process: wall time from start to the scene on disk, frames of
input video per second, the per-stage timings the pipeline records, and the worker's peak
resident memory (``ru_maxrss`` of the finished child, this process starts no other).
Prints a markdown table and, with ``--json``, the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..scene import load_scene
from ..worker_client import worker_command, worker_env


def measure(video: str, engine: str = "sfm", max_side: int = 640, extra: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scene.ov3r.npz"
        cmd = worker_command(None, ["reconstruct", video, "--out", str(out), "--engine", engine,
                                    "--max-side", str(max_side), *(extra or [])])
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed on {video}: {proc.stdout[-500:]} {proc.stderr[-1500:]}")
        scene = load_scene(out)
    meta = scene.metadata
    frames = int(meta["video"]["frames_read"])
    return {
        "video": Path(video).name,
        "frames": frames,
        "keyframes": int(meta["keyframes"]),
        "registered": int(meta.get("registered_keyframes", 0)),
        "points": len(scene),
        "wall_s": wall,
        "fps": frames / wall,
        "peak_mib": max(peak_kib, before) / 1024.0,
        "timings": meta.get("timings", {}),
        "resolution": f"{meta['video']['width']}x{meta['video']['height']}",
        "placed": float((meta.get("coverage") or {}).get("fraction", float("nan"))),
    }


def table(rows: list[dict]) -> str:
    head = ("| video | resolution | frames | placed % | keyframes (registered) | points | wall s | input fps | peak MiB "
            "| stages (s) |\n")
    head += "|---|---|---|---|---|---|---|---|---|---|\n"
    lines = []
    for r in rows:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items() if k != "total")
        lines.append(
            f"| {r['video']} | {r['resolution']} | {r['frames']} | {100 * r['placed']:.0f} | {r['keyframes']} "
            f"({r['registered']}) | {r['points']:,} "
            f"| {r['wall_s']:.1f} | {r['fps']:.1f} | {r['peak_mib']:.0f} | {stages} |"
        )
    return head + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench.speed")
    p.add_argument("videos", nargs="+")
    p.add_argument("--engine", default="sfm")
    p.add_argument("--max-side", type=int, default=640)
    p.add_argument("--semantics", default=None, help="the worker's --semantics (none: geometry alone)")
    p.add_argument("--json", default=None, help="also write the raw numbers here")
    args = p.parse_args(argv)
    rows = []
    extra = ["--semantics", args.semantics] if args.semantics else []
    for v in args.videos:
        # One fresh interpreter per video so ru_maxrss belongs to that video's worker alone.
        code = ("import json,sys; from ov3r.core.bench.speed import measure; "
                f"print(json.dumps(measure(sys.argv[1], {args.engine!r}, {args.max_side}, {extra!r})))")
        out = subprocess.run([sys.executable, "-c", code, v], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
