"""Geometry engines behind one interface (see ``engine.GeometryEngine``)."""

from __future__ import annotations

from .engine import GeometryEngine, Keyframe, Reconstruction

ENGINES = ("sfm", "clip3r")


def get_engine(name: str, **settings: object) -> GeometryEngine:
    """The engine called ``name`` ("sfm" or "clip3r"); ``settings`` go to its settings dataclass
    (for "clip3r", environment variables such as OV3R_CLIP3R_WEIGHTS fill what is not given).

    Imports lazily so that importing ``core.geometry`` stays cheap (no torch / pycolmap).
    """
    if name == "sfm":
        from .sfm import SfmEngine, SfmSettings

        return SfmEngine(SfmSettings(**settings))  # type: ignore[arg-type]
    if name == "clip3r":
        from .clip3r_engine import Clip3rEngine, Clip3rSettings

        return Clip3rEngine(Clip3rSettings.from_env(**settings))
    raise ValueError(f"unknown geometry engine {name!r}; available: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "GeometryEngine", "Keyframe", "Reconstruction", "get_engine"]
