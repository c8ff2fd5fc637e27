"""The SemanticScene data type and its versioned file format."""

from .io import SUFFIX, load_scene, save_scene
from .semantic_scene import FORMAT_NAME, FORMAT_VERSION, Cameras, SceneFormatError, Segments, SemanticScene

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SUFFIX",
    "Cameras",
    "SceneFormatError",
    "Segments",
    "SemanticScene",
    "load_scene",
    "save_scene",
]
