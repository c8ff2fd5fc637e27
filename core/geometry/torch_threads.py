"""``torch_threads(n)``: torch's CPU thread count set to ``n`` for a block, restored after (engines
run inside long-lived workers whose other jobs keep their own setting). ``n`` falsy: unchanged."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    import torch

    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
