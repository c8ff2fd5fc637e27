"""Scene config of a synthetic room: a frozen dataclass, canonical JSON, a content hash.

Everything that changes the rendered output is a field, so the hash is a cache key
(:mod:`core.scenegen.suite`). The generator is deterministic for a given config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Tuple, Union

__all__ = ["RoomConfig", "ROOM_VERSION", "OPTIONAL_DEFAULTS", "config_hash", "load_config"]

#: Bump when the layout, trajectory, renderer or output format changes: invalidates caches.
ROOM_VERSION = "room-1"

ROOM_TYPES = ("living", "bedroom", "kitchen", "office", "mixed")
SHAPES = ("rect", "L")
LIGHTINGS = ("day", "evening", "overcast")
TRAJECTORIES = ("walk_loop", "walk_scan", "hard_walk")
SURFACES = ("textured", "flat")

#: Fields added after ``room-1``'s configs were hashed, with the default that reproduces the old
#: render: left out of the canonical JSON while they hold it, so every older config keeps its hash.
OPTIONAL_DEFAULTS = {"surfaces": "textured", "light_changes": False, "fast_denoise": False}


@dataclass(frozen=True)
class RoomConfig:
    """A synthetic room scene. Lengths in metres.

    Attributes:
        name: label (part of the hash, so two suites never share a cache entry by accident).
        seed: drives layout, model choice, trajectory, hand shake and GT sampling.
        libraries: furniture libraries models may come from (``core.scenegen.catalog``).
        room_type: biases the class mix: living, bedroom, kitchen, office, mixed.
        room_width, room_depth, room_height: room extent along x, y and z.
        shape: ``"rect"`` or ``"L"`` (a corner block of the rectangle is cut out).
        num_objects: furniture items (8 to 25; small objects on tops count).
        lighting: ``"day"`` (sun through the windows + ceiling light), ``"evening"``
            (warm lamps), ``"overcast"`` (soft sky only).
        trajectory: ``"walk_loop"`` (walk around the room scanning outward and across),
            ``"walk_scan"`` (walk back and forth along the room, panning) or ``"hard_walk"`` (hard
            for geometry: rotations in place, fast pans, close-ups of blank walls;
            :mod:`core.scenegen.trajectory`).
        width, height: image size in pixels (even).
        frames, fps: video length; timestamps ``arange(frames) / fps``.
        samples: Cycles samples per pixel; ``denoise``: OpenImageDenoise.
        lens_mm: focal length on a 36 mm wide sensor (phone-like wide: 26 mm).
        gt_points: surface samples drawn before the visibility test of the GT cloud.
        crf: x264 quality.
        exclude_models: catalog ids never used.
        surfaces: ``"textured"`` (procedural paint / wood textures, the furniture's own materials)
            or ``"flat"`` (single-colour pale walls, floor and ceiling; every furniture material one
            plain colour, no image textures).
        light_changes: strong light changes during the walk (ceiling lamps switching off and on,
            daylight through the windows brightening and dimming).
        fast_denoise: OpenImageDenoise without prefiltering its albedo and normal guides (a
            sixth of the denoising time: at 480x360 most of a frame's render time otherwise).

    ``surfaces``, ``light_changes`` and ``fast_denoise`` are left out of :meth:`to_dict` /
    :meth:`to_json` (so out of the hash) while they hold their defaults (:data:`OPTIONAL_DEFAULTS`).
    """

    name: str = "room"
    seed: int = 0
    libraries: Tuple[str, ...] = ("BlendSwap-CC-0",)
    room_type: str = "living"
    room_width: float = 5.0
    room_depth: float = 4.0
    room_height: float = 2.6
    shape: str = "rect"
    num_objects: int = 14
    lighting: str = "day"
    trajectory: str = "walk_loop"
    width: int = 640
    height: int = 480
    frames: int = 150
    fps: float = 15.0
    samples: int = 4
    denoise: bool = True
    lens_mm: float = 26.0
    gt_points: int = 400_000
    crf: int = 18
    exclude_models: Tuple[str, ...] = field(default_factory=tuple)
    surfaces: str = "textured"
    light_changes: bool = False
    fast_denoise: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "libraries", tuple(self.libraries))
        object.__setattr__(self, "exclude_models", tuple(self.exclude_models))
        if not self.libraries:
            raise ValueError("libraries must not be empty")
        if self.room_type not in ROOM_TYPES:
            raise ValueError(f"room_type must be one of {ROOM_TYPES}, got {self.room_type!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}")
        if self.lighting not in LIGHTINGS:
            raise ValueError(f"lighting must be one of {LIGHTINGS}, got {self.lighting!r}")
        if self.trajectory not in TRAJECTORIES:
            raise ValueError(f"trajectory must be one of {TRAJECTORIES}, got {self.trajectory!r}")
        if self.surfaces not in SURFACES:
            raise ValueError(f"surfaces must be one of {SURFACES}, got {self.surfaces!r}")
        for k in ("light_changes", "fast_denoise"):
            if not isinstance(getattr(self, k), bool):
                raise ValueError(f"{k} must be a bool, got {getattr(self, k)!r}")
        if not 8 <= self.num_objects <= 25:
            raise ValueError(f"num_objects must be in [8, 25], got {self.num_objects}")
        if min(self.room_width, self.room_depth) < 3.0 or max(self.room_width, self.room_depth) > 12.0:
            raise ValueError("room_width / room_depth must be within [3, 12] m")
        if not 2.2 <= self.room_height <= 4.0:
            raise ValueError("room_height must be within [2.2, 4] m")
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be positive even numbers, got {self.width}x{self.height}")
        if self.frames < 1 or self.fps <= 0 or self.samples < 1:
            raise ValueError("frames, fps and samples must be positive")

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> Dict:
        d = asdict(self)
        d["libraries"] = list(self.libraries)
        d["exclude_models"] = list(self.exclude_models)
        for k, default in OPTIONAL_DEFAULTS.items():  # keep the hashes of configs without them
            if d[k] == default:
                del d[k]
        return d

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no whitespace): what the hash is computed from."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Dict) -> "RoomConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown scene config keys: {sorted(unknown)}")
        kw = dict(d)
        for k in ("libraries", "exclude_models"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "RoomConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **kw) -> "RoomConfig":
        return dataclasses.replace(self, **kw)

    def hash(self) -> str:
        return config_hash(self)

    def intrinsics(self):
        """``(3,3)`` float64 pinhole matrix (square pixels, principal point at the centre)."""
        import numpy as np

        f = self.lens_mm / 36.0 * self.width
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0], [0.0, 0.0, 1.0]])


def config_hash(config: RoomConfig) -> str:
    """SHA-256 hex of :data:`ROOM_VERSION` + the canonical JSON."""
    return hashlib.sha256((ROOM_VERSION + "\n" + config.to_json()).encode()).hexdigest()


def load_config(path: Union[str, Path]) -> RoomConfig:
    """Read a scene config JSON file."""
    return RoomConfig.from_json(Path(path).read_text())
