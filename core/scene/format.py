"""The SemanticScene file format's name and version, and its one error type.

Below both the data type (semantic_scene.py) and its checks (validation.py), which each need them.
"""

from __future__ import annotations

FORMAT_NAME = "ov3r.semantic_scene"
FORMAT_VERSION = 1


class SceneFormatError(ValueError):
    """A file or object is not a valid SemanticScene (one clear message, never a crash)."""
