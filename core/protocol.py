"""Worker protocol: one JSON object per line on the worker's stdout.

  {"type": "progress", "stage": str, "done": int, "total": int}
  {"type": "partial",  "path": str}     a SemanticScene of the work so far
  {"type": "done",     "path": str}     the final SemanticScene; a reconstruction adds "coverage"
                                        (one line: how much of the video was placed) and, when
                                        under 90 %, "warning" (which frames were not placed and why)
  {"type": "error",    "message": str}  user-facing; the worker exits non-zero after it
  {"type": "log",      "message": str}  informational

Anything else the worker or its libraries print goes to stderr, never stdout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

EVENT_TYPES = ("progress", "partial", "done", "error", "log")


@dataclass
class Event:
    type: str
    data: dict[str, Any]

    @property
    def stage(self) -> str:
        return str(self.data.get("stage", ""))

    @property
    def done(self) -> int:
        return int(self.data.get("done", 0))

    @property
    def total(self) -> int:
        return int(self.data.get("total", 0))

    @property
    def path(self) -> str:
        return str(self.data.get("path", ""))

    @property
    def message(self) -> str:
        return str(self.data.get("message", ""))


def encode(type_: str, **data: Any) -> str:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return json.dumps({"type": type_, **data}, ensure_ascii=False)


def decode(line: str) -> Event | None:
    """Parse one stdout line; None for lines that are not protocol events."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("type") not in EVENT_TYPES:
        return None
    type_ = obj.pop("type")
    return Event(type_, obj)
