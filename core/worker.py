"""The worker process: ``python -m core.worker reconstruct VIDEO --out SCENE``.

Speaks the JSON-lines protocol of ``core.protocol`` on stdout. Library chatter (C or
Python) is sent to stderr so stdout carries protocol lines only. Cancel = the parent
terminates this process group.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TextIO

from .protocol import encode


class Emitter:
    """Writes protocol events to the real stdout; rate-limits progress and partials."""

    def __init__(self, stream: TextIO, partial_dir: Path | None, partial_interval: float):
        self.stream = stream
        self.partial_dir = partial_dir
        self.partial_interval = partial_interval
        self._last_progress = 0.0
        self._last_partial = 0.0
        self._partial_n = 0
        self._last_stage = ""

    def emit(self, type_: str, **data) -> None:
        self.stream.write(encode(type_, **data) + "\n")
        self.stream.flush()

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self._last_stage or done >= total or now - self._last_progress > 0.1:
            self._last_progress, self._last_stage = now, stage
            self.emit("progress", stage=stage, done=done, total=total)

    def partial(self, scene) -> None:
        from .scene import save_scene

        now = time.monotonic()
        if self.partial_dir is None or now - self._last_partial < self.partial_interval:
            return
        self._last_partial = now
        # Alternate two files: the reader may still be loading the previous one.
        path = self.partial_dir / f"partial-{self._partial_n % 2}.ov3r.npz"
        self._partial_n += 1
        save_scene(scene, path)
        self.emit("partial", path=str(path), points=len(scene))


def _protocol_stdout() -> TextIO:
    """Keep a private copy of stdout for the protocol and point fd 1 at stderr."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.worker")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reconstruct", help="video -> SemanticScene")
    r.add_argument("video")
    r.add_argument("--out", required=True)
    r.add_argument("--engine", default="sfm")
    r.add_argument("--max-frames", type=int, default=None)
    r.add_argument("--max-side", type=int, default=640)
    r.add_argument("--max-keyframes", type=int, default=None)
    r.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"), default=None)
    # default: "compact" when its weights are shipped, else none
    r.add_argument("--semantics", choices=["none", "compact", "openclip"], default=None,
                   help="image encoder of the semantics stage (segments + descriptors)")
    r.add_argument("--partial-dir", default=None, help="write partial scenes here")
    r.add_argument("--partial-interval", type=float, default=2.0, help="seconds between partial scenes")
    return p


def run_reconstruct(args: argparse.Namespace, emitter: Emitter) -> tuple[Path, dict]:
    """Reconstruct, save; returns (scene path, the scene's coverage record)."""
    from .jobs import JobContext
    from .pipeline import ReconstructSettings, reconstruct_video
    from .scene import save_scene

    settings = ReconstructSettings(engine=args.engine, max_frames=args.max_frames, max_side=args.max_side)
    if args.max_keyframes:
        settings.keyframes.max_keyframes = args.max_keyframes
    if args.intrinsics:
        settings.intrinsics = tuple(args.intrinsics)
    if args.semantics:
        settings.semantics = None if args.semantics == "none" else args.semantics
    ctx = JobContext(emitter.progress, emitter.partial)
    scene = reconstruct_video(args.video, ctx, settings)
    emitter.progress("save", 0, 1)
    out = save_scene(scene, args.out)
    emitter.progress("save", 1, 1)
    return out, dict(scene.metadata.get("coverage") or {})


def main(argv: list[str] | None = None) -> int:
    out = _protocol_stdout()
    args = _parser().parse_args(argv)
    partial_dir = Path(args.partial_dir) if getattr(args, "partial_dir", None) else None
    if partial_dir is not None:
        partial_dir.mkdir(parents=True, exist_ok=True)
    emitter = Emitter(out, partial_dir, getattr(args, "partial_interval", 2.0))
    try:
        from .geometry.frame_placement import coverage_summary
        from .jobs import JobCancelled, JobError
        from .scene import SceneFormatError

        path, coverage = run_reconstruct(args, emitter)
        extra = {"coverage": coverage_summary(coverage)} if coverage else {}
        if coverage.get("warning"):
            extra["warning"] = coverage["warning"]
        emitter.emit("done", path=str(path), **extra)
        return 0
    except (JobError, SceneFormatError) as exc:
        emitter.emit("error", message=str(exc))
        return 2
    except JobCancelled:
        emitter.emit("error", message="cancelled", cancelled=True)
        return 3
    except MemoryError:
        emitter.emit("error", message="out of memory: lower the resolution cap or the frame limit")
        return 4
    except Exception as exc:  # noqa: BLE001 - report anything unexpected, with the trace on stderr
        traceback.print_exc()
        emitter.emit("error", message=f"internal error: {exc.__class__.__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
