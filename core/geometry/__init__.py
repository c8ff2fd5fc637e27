"""Geometry engines behind one interface (see ``engine.GeometryEngine``)."""

from __future__ import annotations

from .engine import GeometryEngine, Keyframe, Reconstruction

ENGINES = ("sfm",)


def get_engine(name: str, **settings: object) -> GeometryEngine:
    """The engine called ``name`` ("sfm"; "clip3r" later); ``settings`` go to its settings dataclass.

    Imports lazily so that importing ``core.geometry`` stays cheap (no torch / pycolmap).
    """
    if name == "sfm":
        from .sfm import SfmEngine, SfmSettings

        return SfmEngine(SfmSettings(**settings))  # type: ignore[arg-type]
    raise ValueError(f"unknown geometry engine {name!r}; available: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "GeometryEngine", "Keyframe", "Reconstruction", "get_engine"]
