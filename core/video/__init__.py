"""Video decoding (PyAV) and keyframe selection."""

from .keyframes import KeyframeSettings, select_keyframes
from .reader import Frame, VideoInfo, iter_frames, probe_video

__all__ = ["Frame", "KeyframeSettings", "VideoInfo", "iter_frames", "probe_video", "select_keyframes"]
