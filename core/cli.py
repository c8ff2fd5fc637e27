"""The ``ov3r`` command: reconstruct, blend, export, query, label.

Heavy work runs in the worker process (the same one the add-on uses); this process only
draws progress bars and forwards Ctrl-C as a cancel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .protocol import Event
from .worker_client import PACKAGE_ROOT, WorkerProcess

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".3gp", ".mts"}

# Loads the extension folder as the package "ov3r" (whatever the folder is called) and runs
# the headless Blender builder in the bpy module. Kept out of core: core never imports bpy.
_BLEND_BOOTSTRAP = """
import importlib.util, sys
root = sys.argv[1]
spec = importlib.util.spec_from_file_location("ov3r", root + "/__init__.py", submodule_search_locations=[root])
mod = importlib.util.module_from_spec(spec); sys.modules["ov3r"] = mod; spec.loader.exec_module(mod)
from ov3r.ov3r_addon import headless
sys.exit(headless.main(sys.argv[2:]))
"""


class _Bars:
    """One tqdm bar per stage, on stderr."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.stage = None

    def update(self, ev: Event) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if ev.stage != self.stage:
            self.close()
            self.stage = ev.stage
            self.bar = tqdm(total=max(ev.total, 1), desc=ev.stage, unit="", leave=True, file=sys.stderr)
        if self.bar is not None:
            if ev.total and ev.total != self.bar.total:
                self.bar.total = ev.total
            self.bar.n = ev.done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_job(worker: WorkerProcess, quiet: bool = False) -> str:
    """Drive a worker to the end; returns the ``done`` path or raises SystemExit with the error."""
    bars = _Bars(quiet)
    result = None
    try:
        for ev in worker.events():
            if ev.type == "progress":
                bars.update(ev)
            elif ev.type == "partial" and not quiet:
                bars.close()
                print(f"partial scene: {ev.data.get('points', '?')} points", file=sys.stderr)
            elif ev.type == "log" and not quiet:
                print(ev.message, file=sys.stderr)
            elif ev.type == "done":
                result = ev.path
                bars.close()
                if ev.data.get("coverage") and not quiet:
                    print(ev.data["coverage"], file=sys.stderr)
                if ev.data.get("warning"):
                    print(f"ov3r: warning: {ev.data['warning']}", file=sys.stderr)
            elif ev.type == "error":
                bars.close()
                raise SystemExit(f"ov3r: error: {ev.message}")
    except KeyboardInterrupt:
        worker.cancel()
        bars.close()
        raise SystemExit("ov3r: cancelled") from None
    bars.close()
    if result is None:
        raise SystemExit("ov3r: error: the worker ended without a result")
    return result


def _reconstruct(video: str, out: str, args: argparse.Namespace) -> str:
    wargs = ["reconstruct", video, "--out", out, "--engine", args.engine, "--max-side", str(args.max_side)]
    if args.max_frames:
        wargs += ["--max-frames", str(args.max_frames)]
    if args.max_keyframes:
        wargs += ["--max-keyframes", str(args.max_keyframes)]
    if args.intrinsics:
        wargs += ["--intrinsics", *(repr(float(v)) for v in args.intrinsics)]
    if args.semantics:
        wargs += ["--semantics", args.semantics]
    return run_job(WorkerProcess(wargs, python=args.python), args.quiet)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    out = args.output or str(Path(args.video).with_suffix("")) + ".ov3r.npz"
    path = _reconstruct(args.video, out, args)
    print(path)
    return 0


def cmd_blend(args: argparse.Namespace) -> int:
    src = Path(args.input)
    if src.suffix.lower() in VIDEO_SUFFIXES:
        scene_path = str(Path(args.output).with_suffix("")) + ".ov3r.npz"
        scene_path = _reconstruct(str(src), scene_path, args)
    else:
        scene_path = str(src)
    bargs = [scene_path, args.output]
    if src.suffix.lower() in VIDEO_SUFFIXES:
        bargs += ["--video", str(src)]
    if args.render:
        bargs += ["--render", args.render]
    worker = WorkerProcess(bargs, command=[args.python or sys.executable, "-c", _BLEND_BOOTSTRAP, str(PACKAGE_ROOT)])
    print(run_job(worker, args.quiet))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .export import write_ply
    from .scene import SceneFormatError, load_scene

    with tqdm(total=2, desc="export", disable=args.quiet, file=sys.stderr) as bar:
        try:
            scene = load_scene(args.scene)
        except SceneFormatError as exc:
            raise SystemExit(f"ov3r: error: {exc}") from None
        bar.update(1)
        suffix = Path(args.output).suffix.lower()
        if suffix != ".ply":
            raise SystemExit(f"ov3r: error: unsupported export format {suffix!r} (use .ply)")
        write_ply(scene, args.output)
        bar.update(1)
    print(args.output)
    return 0


def _load_for_text(args: argparse.Namespace):
    """(scene, text encoder of its space) for query / label."""
    from .scene import SceneFormatError, load_scene
    from .semantics.query import SpaceMismatch, check_space, text_encoder_for

    try:
        scene = load_scene(args.scene)
        oc = {"model_name": args.openclip_model, "checkpoint": args.openclip_checkpoint} \
            if args.openclip_checkpoint else None
        enc = text_encoder_for(scene, oc)
        check_space(scene, enc)
    except (SceneFormatError, SpaceMismatch, FileNotFoundError) as exc:
        raise SystemExit(f"ov3r: error: {exc}") from None
    return scene, enc


def cmd_query(args: argparse.Namespace) -> int:
    from .semantics.query import query

    scene, enc = _load_for_text(args)
    res = query(scene, args.text, enc)
    labels = scene.segments.label
    print(f"{'rank':>4} {'segment':>7} {'score':>7} {'points':>8}  label")
    for r, s in enumerate(res.order[: args.top]):
        print(f"{r + 1:>4} {int(s):>7} {res.segment[s]:>7.3f} {int(scene.segments.point_count[s]):>8}  {labels[s]}")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from collections import Counter

    from .scene import save_scene
    from .semantics.query import default_threshold, label_scene

    scene, enc = _load_for_text(args)
    vocab = [v for v in args.vocab.split(",") if v.strip()]
    thr = args.threshold if args.threshold is not None else default_threshold(scene)
    label_scene(scene, vocab, thr, enc)
    out = save_scene(scene, args.output or args.scene)
    for name, n in Counter(scene.segments.label).most_common():
        print(f"{name}: {n} segments", file=sys.stderr)
    print(out)
    return 0


def _text_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--openclip-model", default="ViT-B-16", help="open_clip model of an open_clip scene")
    p.add_argument("--openclip-checkpoint", default=None, help="its local checkpoint")


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="sfm", help="geometry engine (default: sfm)")
    p.add_argument("--max-frames", type=int, default=None, help="decode at most N frames")
    p.add_argument("--max-side", type=int, default=640, help="resolution cap, longest side in px (default 640)")
    p.add_argument("--max-keyframes", type=int, default=None)
    p.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"), default=None,
                   help="the camera's pinhole intrinsics in pixels of the video's full resolution, when known "
                        "(default: self-calibrated)")
    p.add_argument("--semantics", choices=["none", "compact", "openclip"], default=None,
                   help="segments + descriptors (default: compact when its weights are shipped)")
    p.add_argument("--python", default=None, help="interpreter for the worker (default: this one)")
    p.add_argument("-q", "--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ov3r", description="Open-vocabulary 3D reconstruction of RGB videos.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reconstruct", help="video -> scene file (.ov3r.npz)")
    r.add_argument("video")
    r.add_argument("-o", "--output", default=None)
    _job_options(r)
    r.set_defaults(func=cmd_reconstruct)
    b = sub.add_parser("blend", help="video or scene file -> .blend (headless, through the bpy module)")
    b.add_argument("input")
    b.add_argument("-o", "--output", required=True)
    b.add_argument("--render", default=None, help="also render a PNG of the result")
    _job_options(b)
    b.set_defaults(func=cmd_blend)
    e = sub.add_parser("export", help="scene file -> .ply with per-point attributes")
    e.add_argument("scene")
    e.add_argument("-o", "--output", required=True)
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=cmd_export)
    q = sub.add_parser("query", help="score a scene's segments against a text (best first)")
    q.add_argument("scene")
    q.add_argument("text")
    q.add_argument("--top", type=int, default=10, help="segments to print (default 10)")
    _text_options(q)
    q.set_defaults(func=cmd_query)
    lb = sub.add_parser("label", help="label every segment with the best word of a vocabulary")
    lb.add_argument("scene")
    lb.add_argument("--vocab", required=True, help="comma separated, e.g. chair,sofa,table")
    lb.add_argument("--threshold", type=float, default=None, help="below it: 'other' (default: the encoder's)")
    lb.add_argument("-o", "--output", default=None, help="output scene (default: overwrite the input)")
    _text_options(lb)
    lb.set_defaults(func=cmd_label)
    sub.add_parser("bench", help="run an engine on benchmark scenes (ov3r bench --help)")
    sub.add_parser("train", help="train a model: `ov3r train compact --help`, `ov3r train compact-cached --help`, "
                   "`ov3r train ovs --help`")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["train", "compact-cached"]:  # its own parser (core.train.compact_cached)
        from .train.compact_cached import main as train_cached_main

        return int(train_cached_main(argv[2:]) or 0)
    if argv[:2] == ["train", "compact"]:  # its own parser (core.train.compact)
        from .train.compact import main as train_main

        return int(train_main(argv[2:]) or 0)
    if argv[:2] == ["train", "ovs"]:  # its own parser (core.train.ovs)
        from .train.ovs import main as train_ovs_main

        return int(train_ovs_main(argv[2:]) or 0)
    if argv[:2] == ["train", "clip3r"]:  # its own parser (core.train.clip3r)
        from .train.clip3r import main as train_clip3r_main

        return int(train_clip3r_main(argv[2:]) or 0)
    if argv[:1] == ["bench"]:  # its own parser (core.bench.run), all options passed through
        from .bench.run import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
