"""The SemanticScene data type and its versioned file format."""

from .io import SUFFIX, load_scene, save_scene
from .frame_path import FramePath
from .semantic_scene import FORMAT_NAME, FORMAT_VERSION, Cameras, SceneFormatError, Segments, SemanticScene

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SUFFIX",
    "Cameras",
    "FramePath",
    "SceneFormatError",
    "Segments",
    "SemanticScene",
    "load_scene",
    "save_scene",
]
