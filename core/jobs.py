"""Progress / partial / cancel plumbing shared by engines, the worker and the CLI.

Engines never print: they call ``JobContext.progress`` and ``JobContext.partial``
and poll ``JobContext.check_cancel()`` between units of work.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable


class JobCancelled(RuntimeError):
    """Raised inside a job when its cancel flag was set."""


class JobError(RuntimeError):
    """An expected failure with a message meant for the user (bad input, no motion, ...)."""


ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)
PartialFn = Callable[[object], None]  # receives a SemanticScene so far


@dataclass
class JobContext:
    progress_fn: ProgressFn | None = None
    partial_fn: PartialFn | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.check_cancel()
        if self.progress_fn is not None:
            self.progress_fn(stage, int(done), int(total))

    def partial(self, scene: object) -> None:
        if self.partial_fn is not None:
            self.partial_fn(scene)

    def check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled("cancelled")
