"""The scene buffer: registered frames that later keyframes may be registered against.

A bounded buffer filled by reservoir sampling (Vitter's algorithm R), as in SLAM3R: after
``n`` frames have been offered, every one of them is in the buffer with the same
probability ``capacity / n``, so the buffer covers the whole video seen so far instead of
only its recent past (a FIFO would forget the start and break loop-like revisits).
Seeded, so a run is reproducible; the state can be saved to resume a stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["ReservoirBuffer"]


class ReservoirBuffer:
    """Holds up to ``capacity`` frames (``capacity <= 0``: unbounded), each a frame id with
    an optional payload (tokens, world points ...) that the buffer never inspects."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = int(capacity)
        self.seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._ids: list[int] = []
        self._items: dict[int, Any] = {}
        self.n_seen = 0

    def offer(self, frame_id: int, item: Any = None) -> tuple[bool, int | None]:
        """Offer a newly registered frame. Returns ``(kept, evicted_frame_id)``."""
        frame_id = int(frame_id)
        if frame_id in self._items:
            raise ValueError(f"frame {frame_id} is already in the buffer")
        self.n_seen += 1
        if self.capacity <= 0 or len(self._ids) < self.capacity:
            self._ids.append(frame_id)
            self._items[frame_id] = item
            return True, None
        j = int(self._rng.integers(self.n_seen))  # uniform in [0, n_seen)
        if j >= self.capacity:
            return False, None
        evicted = self._ids[j]
        del self._items[evicted]
        self._ids[j] = frame_id
        self._items[frame_id] = item
        return True, evicted

    @property
    def ids(self) -> list[int]:
        """Frame ids in the buffer, in slot order."""
        return list(self._ids)

    def get(self, frame_id: int) -> Any:
        return self._items[int(frame_id)]

    def items(self) -> Iterator[tuple[int, Any]]:
        return ((i, self._items[i]) for i in self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, frame_id: object) -> bool:
        return frame_id in self._items

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (ids and random state; payloads are the caller's)."""
        return {"capacity": self.capacity, "seed": self.seed, "n_seen": self.n_seen,
                "ids": list(self._ids), "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any], items: dict[int, Any] | None = None) -> None:
        self.capacity = int(state["capacity"])
        self.seed = int(state["seed"])
        self.n_seen = int(state["n_seen"])
        self._ids = [int(i) for i in state["ids"]]
        self._items = {i: (items or {}).get(i) for i in self._ids}
        self._rng = np.random.Generator(np.random.PCG64())
        self._rng.bit_generator.state = state["rng"]
