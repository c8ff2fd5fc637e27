"""The classical geometry engine: pycolmap SfM + CPU plane-sweep MVS + fusion."""

from .engine import SfmEngine, SfmSettings

__all__ = ["SfmEngine", "SfmSettings"]
