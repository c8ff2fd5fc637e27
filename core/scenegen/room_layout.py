"""Room layout: walls, door, windows and furniture placed plausibly on the floor (numpy only).

Conventions (world, metres): z up, floor at ``z = 0``; the room is the rectangle
``[0, W] x [0, D]`` (``shape="L"`` cuts the ``+x +y`` corner block out). A placed model's
local frame has its width along x, its depth along y and its *front facing -y* (what
Blender's OBJ importer gives for a Sweet Home 3D model, whose front faces +Z, Y-up);
``yaw`` rotates it about z, and ``center`` is the centre of its footprint.

Rules: wall items stand with their back against a wall, facing in; floor items stand
anywhere inside; small ``top`` items stand on tables / desks / cabinets / shelves; no two
boxes interpenetrate (oriented footprints + height intervals, 2 cm clearance), nothing
blocks the door, nothing tall covers a window, everything is inside the room and under
the ceiling, and the camera band (``cam_inset`` from the walls, eye height) stays free
of anything taller than :data:`MAX_INTERIOR_HEIGHT`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .catalog import CatalogEntry, load_catalog
from .room_config import RoomConfig
from .taxonomy import SUPPORT_CLASSES, classify_entry, role_of

__all__ = ["Item", "Opening", "Wall", "RoomLayout", "generate_layout", "candidate_models", "boxes_overlap",
           "footprint_corners", "MAX_INTERIOR_HEIGHT"]

CLEARANCE = 0.02
#: Items taller than this stand against a wall and stay shallow (the camera walks at eye height).
MAX_INTERIOR_HEIGHT = 1.15
DOOR_W, DOOR_H = 0.9, 2.05

# class weights per room type (missing = 0.3 background weight for "mixed" variety)
_ROOM_WEIGHTS: Dict[str, Dict[str, float]] = {
    "living": {"sofa": 4, "armchair": 3, "table": 4, "chair": 3, "tv": 2, "tv_stand": 2, "bookcase": 3,
               "lamp": 3, "plant": 3, "cabinet": 1.5, "speaker": 1.5, "clock": 1, "cup": 2, "bottle": 1,
               "radiator": 1, "piano": 0.7, "guitar": 0.7, "book": 1, "toy": 0.7, "box": 0.7, "fan": 0.7,
               "trash_can": 0.5, "food": 0.5, "bench": 0.5, "game_table": 0.4},
    "bedroom": {"bed": 5, "nightstand": 3, "wardrobe": 3, "lamp": 3, "cabinet": 2, "chair": 1.5, "desk": 1.5,
                "plant": 2, "toy": 2, "bag": 2, "bookcase": 1.5, "clock": 1, "bottle": 1, "radiator": 1,
                "armchair": 1, "box": 1, "cup": 1},
    "kitchen": {"refrigerator": 3, "oven": 3, "cabinet": 5, "sink": 2, "table": 3, "chair": 3, "stool": 2,
                "kitchen_appliance": 3, "cup": 3, "bottle": 3, "food": 3, "trash_can": 1.5, "plant": 1,
                "clock": 1, "washing_machine": 1, "extinguisher": 0.7, "radiator": 0.7},
    "office": {"desk": 5, "chair": 4, "bookcase": 3, "cabinet": 3, "lamp": 2, "whiteboard": 2, "computer": 2,
               "plant": 2, "trash_can": 2, "cup": 2, "book": 1.5, "speaker": 1, "clock": 1, "box": 1.5,
               "extinguisher": 1, "fan": 1, "bag": 1, "table": 1.5, "radiator": 1, "armchair": 1},
    "mixed": {},
}


@dataclass
class Wall:
    """A wall segment ``p0 -> p1`` with its inward unit normal; ``length`` in metres."""

    p0: Tuple[float, float]
    p1: Tuple[float, float]
    normal: Tuple[float, float]

    @property
    def length(self) -> float:
        return float(math.dist(self.p0, self.p1))

    def point(self, s: float) -> np.ndarray:
        a, b = np.array(self.p0), np.array(self.p1)
        return a + (b - a) * (s / self.length)


@dataclass
class Opening:
    """A door or window on ``wall`` (index): centred ``offset`` m from ``p0``; ``z0``..``z0+height``."""

    kind: str
    wall: int
    offset: float
    width: float
    z0: float
    height: float


@dataclass
class Item:
    """A placed furniture model (see the module doc for the frame)."""

    instance_id: int
    cls: str
    model_id: str
    library: str
    name: str
    role: str
    center: Tuple[float, float]
    z: float
    yaw: float
    size: Tuple[float, float, float]
    support: Optional[int] = None  # instance id of the item it stands on

    @property
    def top(self) -> float:
        return self.z + self.size[2]


@dataclass
class RoomLayout:
    """Everything the renderer needs, in world metres.

    ``polygon``: floor outline, counter-clockwise. ``obstacles``: ``(cx, cy, hx, hy, z0, z1)``
    axis-aligned keep-out boxes (door swing zone, window recesses, the L notch).
    Instance ids: structure first (walls, floor, ceiling, doors, windows are numbered by the
    renderer from ``1``), items from ``first_item_id``.
    """

    width: float
    depth: float
    height: float
    shape: str
    polygon: List[Tuple[float, float]]
    walls: List[Wall]
    openings: List[Opening]
    items: List[Item]
    cam_inset: float
    obstacles: List[Tuple[float, float, float, float, float, float]] = field(default_factory=list)

    def to_dict(self) -> Dict:
        return asdict(self)

    def model_ids(self) -> List[str]:
        return [it.model_id for it in self.items]


# ----------------------------------------------------------------------------- geometry

def _rot(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def footprint_corners(center, size, yaw) -> np.ndarray:
    """``(4,2)`` corners of an item's footprint (width x depth rotated by yaw)."""
    hw, hd = size[0] / 2, size[1] / 2
    loc = np.array([[-hw, -hd], [hw, -hd], [hw, hd], [-hw, hd]])
    return loc @ _rot(yaw).T + np.asarray(center, float)


def _sat_overlap(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    """Separating-axis test of two convex quads; True when they overlap by more than -margin."""
    for poly in (a, b):
        for i in range(4):
            e = poly[(i + 1) % 4] - poly[i]
            n = np.array([-e[1], e[0]])
            nn = np.linalg.norm(n)
            if nn == 0:
                continue
            n /= nn
            pa, pb = a @ n, b @ n
            if pa.max() + margin <= pb.min() or pb.max() + margin <= pa.min():
                return False
    return True


def boxes_overlap(c1, s1, y1, z1, c2, s2, y2, z2, margin: float = 0.0) -> bool:
    """True if two upright boxes (footprint centre, (w,d,h), yaw, bottom z) interpenetrate.

    ``margin`` > 0 demands that much clearance; touching faces do not count as overlap.
    """
    if z1 + s1[2] <= z2 + 1e-6 or z2 + s2[2] <= z1 + 1e-6:
        return False
    return _sat_overlap(footprint_corners(c1, s1, y1), footprint_corners(c2, s2, y2), margin)


def _room_geometry(cfg: RoomConfig):
    W, D = cfg.room_width, cfg.room_depth
    if cfg.shape == "rect":
        poly = [(0.0, 0.0), (W, 0.0), (W, D), (0.0, D)]
        notch = None
    else:
        nw, nd = round(0.4 * W, 2), round(0.4 * D, 2)
        poly = [(0.0, 0.0), (W, 0.0), (W, D - nd), (W - nw, D - nd), (W - nw, D), (0.0, D)]
        notch = (W - nw / 2, D - nd / 2, nw / 2, nd / 2)
    walls = []
    n = len(poly)
    for i in range(n):
        p0, p1 = poly[i], poly[(i + 1) % n]
        d = np.subtract(p1, p0)
        d = d / np.linalg.norm(d)
        walls.append(Wall(tuple(map(float, p0)), tuple(map(float, p1)), (float(-d[1]), float(d[0]))))  # CCW: left = in
    return poly, walls, notch


def _inside(poly, pts: np.ndarray, notch) -> bool:
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    if pts[:, 0].min() < min(xs) - 1e-9 or pts[:, 0].max() > max(xs) + 1e-9:
        return False
    if pts[:, 1].min() < min(ys) - 1e-9 or pts[:, 1].max() > max(ys) + 1e-9:
        return False
    if notch is not None:
        cx, cy, hx, hy = notch
        q = np.array([[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy]])
        if _sat_overlap(pts, q, 0.0):
            return False
    return True


# ----------------------------------------------------------------------------- models

def candidate_models(cfg: RoomConfig) -> Dict[str, List[Tuple[CatalogEntry, str]]]:
    """``{class: [(entry, role), ...]}`` usable in this room (libraries, exclusions, size)."""
    excl = set(cfg.exclude_models)
    cam_inset = _cam_inset(cfg)
    out: Dict[str, List[Tuple[CatalogEntry, str]]] = {}
    for e in load_catalog(cfg.libraries):
        if e.id in excl:
            continue
        cls = classify_entry(e)
        if cls is None:
            continue
        w, d, h = e.size_m
        role = role_of(cls, (w, d, h))
        if role == "floor" and h > MAX_INTERIOR_HEIGHT:
            role = "wall"
        if h > cfg.room_height - 0.15 or max(w, d) > min(cfg.room_width, cfg.room_depth) * 0.7:
            continue
        if role == "wall" and h > MAX_INTERIOR_HEIGHT and d > cam_inset - 0.3:
            continue
        if e.elevation > 0:
            continue
        out.setdefault(cls, []).append((e, role))
    for v in out.values():
        v.sort(key=lambda t: t[0].id)
    return out


def _cam_inset(cfg: RoomConfig) -> float:
    m = min(cfg.room_width, cfg.room_depth)
    if cfg.shape == "L":  # the arms are 0.6 of the room wide: keep the inset loop well-formed
        return float(min(1.3, 0.24 * m))
    return float(min(1.3, 0.3 * m))


def _support_height(e: CatalogEntry) -> float:
    drop = e.drop_on_top_elevation / 100.0
    h = e.height / 100.0
    return drop if 0.3 < drop < h - 0.15 else h


# ----------------------------------------------------------------------------- generator

def generate_layout(cfg: RoomConfig, max_tries: int = 400) -> RoomLayout:
    """Deterministic layout for ``cfg`` (same config -> same layout)."""
    rng = np.random.default_rng([cfg.seed, 7001])
    poly, walls, notch = _room_geometry(cfg)
    H = cfg.room_height
    cam_inset = _cam_inset(cfg)
    obstacles: List[Tuple[float, float, float, float, float, float]] = []
    if notch is not None:
        obstacles.append((*notch, 0.0, H))

    # --- door on a wall long enough, windows on the others
    openings: List[Opening] = []
    long_walls = [i for i, w in enumerate(walls) if w.length >= DOOR_W + 0.6]
    dw = int(rng.choice(long_walls))
    off = float(rng.uniform(0.3 + DOOR_W / 2, walls[dw].length - 0.3 - DOOR_W / 2))
    openings.append(Opening("door", dw, off, DOOR_W, 0.0, min(DOOR_H, H - 0.2)))
    n_win = int(rng.integers(1, 3))
    win_walls = [i for i in range(len(walls)) if i != dw and walls[i].length >= 1.6]
    rng.shuffle(win_walls)
    for wi in win_walls[:n_win]:
        ww = float(min(rng.uniform(1.0, 1.6), walls[wi].length - 0.6))
        o = float(rng.uniform(0.3 + ww / 2, walls[wi].length - 0.3 - ww / 2))
        sill = 0.85
        openings.append(Opening("window", wi, o, ww, sill, min(1.25, H - sill - 0.3)))
    for op in openings:
        w = walls[op.wall]
        c = w.point(op.offset)
        n = np.array(w.normal)
        tang = np.array(w.p1) - np.array(w.p0)
        tang /= np.linalg.norm(tang)
        if op.kind == "door":
            depth = 1.0  # keep the door's swing / passage free
            cc = c + n * depth / 2
            hx = abs(tang[0]) * op.width / 2 + abs(n[0]) * depth / 2
            hy = abs(tang[1]) * op.width / 2 + abs(n[1]) * depth / 2
            obstacles.append((float(cc[0]), float(cc[1]), float(hx), float(hy), 0.0, H))
        else:
            depth = 0.06
            cc = c + n * depth / 2
            hx = abs(tang[0]) * op.width / 2 + abs(n[0]) * depth / 2
            hy = abs(tang[1]) * op.width / 2 + abs(n[1]) * depth / 2
            obstacles.append((float(cc[0]), float(cc[1]), float(hx), float(hy), op.z0, op.z0 + op.height))

    pool = candidate_models(cfg)
    weights = dict(_ROOM_WEIGHTS[cfg.room_type])
    classes = sorted(pool)
    w_cls = np.array([weights.get(c, 0.3 if cfg.room_type != "mixed" else 1.0) for c in classes], float)
    w_cls = np.where([c in weights for c in classes], w_cls, w_cls * (0.15 if cfg.room_type != "mixed" else 1.0))

    items: List[Item] = []
    next_id = [1000]

    def collides(center, size, yaw, z, ignore: Sequence[int] = ()) -> bool:
        corners = footprint_corners(center, size, yaw)
        if not _inside(poly, corners, None):
            return True
        if z + size[2] > H - 0.02:
            return True
        for (cx, cy, hx, hy, z0, z1) in obstacles:
            if boxes_overlap(center, size, yaw, z, (cx, cy), (2 * hx, 2 * hy, z1 - z0), 0.0, z0, CLEARANCE):
                return True
        for it in items:
            if it.instance_id in ignore:
                continue
            if boxes_overlap(center, size, yaw, z, it.center, it.size, it.yaw, it.z, CLEARANCE):
                return True
        return False

    def tall_in_band(center, size, yaw, z) -> bool:
        """Anything above MAX_INTERIOR_HEIGHT must stay out of the camera band."""
        if z + size[2] <= MAX_INTERIOR_HEIGHT:
            return False
        corners = footprint_corners(center, size, yaw)
        for w in walls:
            a, n = np.array(w.p0), np.array(w.normal)
            dist = (corners - a) @ n  # distance from that wall, inwards
            t = np.array(w.p1) - a
            L = np.linalg.norm(t)
            s = (corners - a) @ (t / L)
            near = (s > -0.05) & (s < L + 0.05)
            if np.all(near) and dist.max() <= cam_inset - 0.3:
                return False
        return True

    def add(e: CatalogEntry, cls: str, role: str, center, z, yaw, support=None) -> Item:
        it = Item(next_id[0], cls, e.id, e.library, e.name, role, (float(center[0]), float(center[1])), float(z),
                  float(yaw), tuple(float(v) for v in e.size_m), support)
        next_id[0] += 1
        items.append(it)
        return it

    def try_wall(e, cls, role) -> bool:
        w_, d_, h_ = e.size_m
        for _ in range(30):
            wi = int(rng.integers(len(walls)))
            wall = walls[wi]
            if wall.length < w_ + 0.1:
                continue
            s = float(rng.uniform(w_ / 2 + 0.02, wall.length - w_ / 2 - 0.02))
            n = np.array(wall.normal)
            c = wall.point(s) + n * (d_ / 2 + 0.01)
            yaw = math.atan2(n[1], n[0]) - math.atan2(-1.0, 0.0)  # local -y (front) -> n
            if collides(c, e.size_m, yaw, 0.0) or tall_in_band(c, e.size_m, yaw, 0.0):
                continue
            add(e, cls, role, c, 0.0, yaw)
            return True
        return False

    def try_floor(e, cls, role) -> bool:
        w_, d_, h_ = e.size_m
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        # chairs: first try beside a table, facing it
        if cls in ("chair", "stool"):
            tables = [it for it in items if it.cls in ("table", "desk", "game_table") and it.support is None]
            for _ in range(12 if tables else 0):
                t = tables[int(rng.integers(len(tables)))]
                side = int(rng.integers(4))
                ang = t.yaw + side * math.pi / 2
                ext = (t.size[1] if side % 2 == 0 else t.size[0]) / 2
                dirv = np.array([math.cos(ang - math.pi / 2), math.sin(ang - math.pi / 2)])
                along = np.array([-dirv[1], dirv[0]])
                span = (t.size[0] if side % 2 == 0 else t.size[1]) / 2
                c = np.array(t.center) + dirv * (ext + d_ / 2 - 0.12) + along * rng.uniform(-0.6, 0.6) * span
                yaw = math.atan2(-dirv[1], -dirv[0]) - math.atan2(-1.0, 0.0)  # front faces the table
                if not collides(c, e.size_m, yaw, 0.0) and not tall_in_band(c, e.size_m, yaw, 0.0):
                    add(e, cls, role, c, 0.0, yaw)
                    return True
        for _ in range(40):
            c = np.array([rng.uniform(min(xs), max(xs)), rng.uniform(min(ys), max(ys))])
            yaw = float(rng.uniform(-math.pi, math.pi)) if cls not in ("table", "desk", "game_table", "bench") \
                else float(rng.integers(4) * math.pi / 2 + rng.normal(0, 0.05))
            if collides(c, e.size_m, yaw, 0.0) or tall_in_band(c, e.size_m, yaw, 0.0):
                continue
            add(e, cls, role, c, 0.0, yaw)
            return True
        return False

    def try_top(e, cls, role) -> bool:
        w_, d_, h_ = e.size_m
        supports = [it for it in items if it.cls in SUPPORT_CLASSES and it.support is None]
        for _ in range(30 if supports else 0):
            sp = supports[int(rng.integers(len(supports)))]
            se = by_id[sp.model_id]
            top = _support_height(se)
            room_above = (sp.size[2] - top) if top < sp.size[2] - 1e-6 else H
            if h_ > room_above - 0.03:
                continue
            yaw = sp.yaw + float(rng.uniform(-0.5, 0.5))
            ext = np.abs(_rot(yaw - sp.yaw)) @ np.array([w_ / 2, d_ / 2])  # in support frame
            mx, my = sp.size[0] / 2 - ext[0] - 0.02, sp.size[1] / 2 - ext[1] - 0.02
            if mx <= 0 or my <= 0:
                continue
            local = np.array([rng.uniform(-mx, mx), rng.uniform(-my, my)])
            c = np.array(sp.center) + _rot(sp.yaw) @ local
            if collides(c, e.size_m, yaw, top, ignore=[sp.instance_id]):
                continue
            add(e, cls, role, c, top, yaw, support=sp.instance_id)
            return True
        return False

    by_id = {e.id: e for v in pool.values() for e, _ in v}
    n_target = cfg.num_objects
    # make sure there is a support early and the big pieces go in first (wall, floor, then tops)
    picks: List[Tuple[CatalogEntry, str, str]] = []
    wc = w_cls.copy()
    for _ in range(max_tries):
        if len(picks) >= 3 * n_target:
            break
        k = int(rng.choice(len(classes), p=wc / wc.sum()))
        cls = classes[k]
        e, role = pool[cls][int(rng.integers(len(pool[cls])))]
        picks.append((e, cls, role))
        wc[k] *= 0.6
    order = {"wall": 0, "floor": 1, "top": 2}
    n_top = int(round(0.3 * n_target))
    big = [p for p in picks if p[2] != "top"]
    small = [p for p in picks if p[2] == "top"]
    big.sort(key=lambda p: -p[0].width * p[0].depth)
    placed_big = 0
    for e, cls, role in big:
        if placed_big >= n_target - n_top:
            break
        ok = try_wall(e, cls, role) if role == "wall" else try_floor(e, cls, role)
        placed_big += int(ok)
    for e, cls, role in small + big:
        if len(items) >= n_target:
            break
        if any(it.model_id == e.id and it.role != "top" for it in items) and role != "top":
            continue
        ok = try_top(e, cls, role) if role == "top" else (
            try_wall(e, cls, role) if role == "wall" else try_floor(e, cls, role))
    # fallback: fill with small things until the target is met
    fits = lambda c: cfg.room_type == "mixed" or c in weights  # noqa: E731
    tops = [(e, c, r) for c, v in sorted(pool.items()) for e, r in v if r == "top" and fits(c)]
    fallback = [(e, c, r) for c, v in sorted(pool.items()) for e, r in v if r in ("floor", "wall") and fits(c)]
    tries = 0
    while len(items) < n_target and tries < max_tries:
        tries += 1
        src = tops if (tops and rng.random() < 0.6) else fallback
        e, c, r = src[int(rng.integers(len(src)))]
        if r == "top":
            try_top(e, c, r)
        elif r == "wall":
            try_wall(e, c, r)
        else:
            try_floor(e, c, r)
    if len(items) < 8:
        raise RuntimeError(f"could only place {len(items)} items in {cfg.name} (need >= 8)")
    del order
    return RoomLayout(cfg.room_width, cfg.room_depth, H, cfg.shape, [tuple(map(float, p)) for p in poly], walls,
                      openings, items, cam_inset, obstacles)
