"""Long-lived query worker: loads the text encoder once and answers text queries.

``python -m core.query_worker [--encoder module:factory] [--weights DIR] [--device cpu]``

JSON lines. The first line on stdout is ``{"ready": true, "model": ..., "dim": D}`` (or
``{"error": ..., "fatal": true}`` and exit code 2 when the encoder cannot load). Then,
one answer per request line on stdin:

  {"id": 1, "texts": ["sofa"], "prompt": true}     -> {"id": 1, "embeddings": [[...]], "dim": D}
  {"id": 2, "texts": [...], "descriptors": [[...]]} -> {"id": 2, "scores": [[...]]}  (T,S) cosine
  {"id": 3, "cmd": "ping"}                          -> {"id": 3, "ok": true}
  anything bad                                      -> {"id": ..., "error": "message"}

``prompt: true`` wraps each text in the benchmark prompt ("This is a photo of a {}").
Embeddings are L2-normalised float32 rows. EOF on stdin ends the worker.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

DEFAULT_ENCODER = "core.semantics.text_encoder:TextEncoder"


class HashEncoder:
    """A fast deterministic stand-in (tests, no torch): each word -> a fixed random vector,
    a text -> the normalised sum of its words' vectors. Same words, same direction."""

    space_id = "hash-words"

    def __init__(self, dim: int = 384, device: str = "cpu") -> None:
        self.dim = int(dim)

    def word(self, w: str) -> np.ndarray:
        import zlib

        return np.random.default_rng(zlib.crc32(w.lower().encode("utf-8"))).standard_normal(self.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            v = sum((self.word(w) for w in t.replace("_", " ").split()), np.zeros(self.dim))
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out


def _resolve(spec: str) -> Callable[..., Any]:
    module, _, attr = spec.partition(":")
    if module.startswith("core."):  # run as a sub-package too (``<pkg>.core.query_worker``)
        module = f"{__package__}{module[4:]}" if __package__ else module
    return getattr(importlib.import_module(module), attr or "TextEncoder")


def load_encoder(spec: str, device: str = "cpu", weights: str = "") -> Any:
    """The encoder object (``encode(list[str]) -> (T,D)``); loaded eagerly so the first query is fast."""
    if weights:
        if not os.path.isdir(weights):
            raise FileNotFoundError(f"weights folder not found: {weights}")
        os.environ["OV3R_WEIGHTS"] = weights
    factory = _resolve(spec)
    try:
        enc = factory(device=device)
    except TypeError:
        enc = factory()
    if hasattr(enc, "load"):
        enc.load()
    return enc


def _prompt(text: str) -> str:
    mod = importlib.import_module(f"{__package__}.semantics.text_encoder" if __package__ else "core.semantics.text_encoder")
    return mod.prompt(text)


def handle(enc: Any, req: dict[str, Any]) -> dict[str, Any]:
    """One request -> one answer (never raises)."""
    rid = req.get("id")
    try:
        if req.get("cmd") == "ping":
            return {"id": rid, "ok": True}
        texts = req.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return {"id": rid, "error": "'texts' must be a list of strings"}
        if any(not t.strip() for t in texts):
            return {"id": rid, "error": "empty query text"}
        if req.get("prompt"):
            texts = [_prompt(t) for t in texts]
        t0 = time.perf_counter()
        emb = np.asarray(enc.encode(texts), np.float32)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        out: dict[str, Any] = {"id": rid, "dim": int(emb.shape[1]) if emb.ndim == 2 else 0}
        if "descriptors" in req:
            desc = np.asarray(req["descriptors"], np.float32)
            if desc.ndim != 2 or desc.shape[1] != emb.shape[1]:
                return {"id": rid, "error": f"descriptors must be (S,{emb.shape[1]}), got {desc.shape}"}
            desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
            out["scores"] = (emb @ desc.T).tolist()
        else:
            out["embeddings"] = emb.tolist()
        out["seconds"] = time.perf_counter() - t0
        return out
    except Exception as exc:  # noqa: BLE001 - a bad request must not kill the worker
        return {"id": rid, "error": f"{exc.__class__.__name__}: {exc}"}


def serve(enc: Any, inp: TextIO, out: TextIO) -> None:
    for line in inp:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
        except ValueError as exc:
            answer: dict[str, Any] = {"id": None, "error": f"bad request: {exc}"}
        else:
            answer = handle(enc, req)
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    # Keep a private stdout for the protocol; libraries' prints go to stderr.
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out = os.fdopen(fd, "w", encoding="utf-8", buffering=1)
    p = argparse.ArgumentParser(prog="python -m core.query_worker")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help="module:factory of the text encoder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--weights", default="", help="weights folder (must exist when given)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (one short text is fastest on 1, also beside a busy Blender)")
    args = p.parse_args(argv)
    try:
        enc = load_encoder(args.encoder, args.device, args.weights)
        if "torch" in sys.modules and args.threads > 0:
            sys.modules["torch"].set_num_threads(args.threads)
        dim = int(getattr(enc, "dim", 0) or np.asarray(enc.encode(["room"])).shape[1])
    except Exception as exc:  # noqa: BLE001 - tell the client why, then stop
        out.write(json.dumps({"error": f"cannot load the text encoder: {exc}", "fatal": True}) + "\n")
        out.flush()
        return 2
    out.write(json.dumps({"ready": True, "model": str(getattr(enc, "space_id", args.encoder)), "dim": dim}) + "\n")
    out.flush()
    serve(enc, sys.stdin, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
