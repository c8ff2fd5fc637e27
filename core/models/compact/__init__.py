"""Compact image encoder trained by this project into the all-MiniLM-L6-v2 text space.

``ImageEncoder.from_pretrained()`` loads the shipped ``weights/compact_v8.safetensors``;
see ``MODEL_CARD.md`` for data, recipe and accuracy. torch is imported with the
submodules, so import them only where an encoder is needed.
"""

from .encoder import DEFAULT_WEIGHTS, ImageEncoder, save_weights
from .net import CompactConfig, CompactImageNet, SigmoidLoss, sigmoid_loss
from .preprocess import preprocess

__all__ = ["ImageEncoder", "DEFAULT_WEIGHTS", "save_weights", "CompactConfig", "CompactImageNet", "SigmoidLoss",
           "sigmoid_loss", "preprocess"]
