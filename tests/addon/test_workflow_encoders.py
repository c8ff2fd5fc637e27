"""Stand-in text encoders for the query worker process (no bpy here: the worker imports
this module as ``tests.addon.test_workflow_encoders``). No tests in this file."""

from __future__ import annotations

import os

from core.query_worker import HashEncoder


class DyingEncoder(HashEncoder):
    """Dies (like a crash or an out-of-memory kill) when asked about "crash"."""

    def encode(self, texts):
        if any("crash" in t for t in texts):
            os._exit(9)
        return super().encode(texts)
