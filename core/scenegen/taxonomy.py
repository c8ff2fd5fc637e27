"""Fixed class taxonomy of the benchmark: catalog names -> classes, placement roles, frequency.

Class ids are stable (their position in :data:`CLASSES`; 0 is ``"unlabeled"``). A model
maps to a class by the first rule in :data:`_RULES` whose regular expression matches its
lower-case catalog name; models that match nothing (vehicles, trees, characters, wall
plugs, ...) are not used in rooms.

Each class has a placement *role* used by :mod:`core.scenegen.room_layout`:

- ``"wall"``: stands on the floor with its back against a wall (bookcase, bed, sofa, ...);
- ``"floor"``: stands anywhere on the floor (table, chair, plant, ...);
- ``"top"``: a small object standing on a table, desk, cabinet or shelf (cup, lamp, ...);
- ``"size"``: ``"top"`` if the model is small (height < 60 cm and footprint < 0.2 m^2),
  else ``"floor"``;
- ``"structure"``: walls, floor, ceiling, door, window (built by the renderer).

:data:`FREQUENCY_ORDER` ranks the classes from most to least frequent in real indoor
scans (ScanNet200-style ordering, structural classes first); :func:`head_common_tail`
cuts any ordering into thirds.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from .catalog import CatalogEntry

__all__ = [
    "CLASSES",
    "STRUCTURE_CLASSES",
    "CLASS_ROLE",
    "FREQUENCY_ORDER",
    "class_id",
    "class_name",
    "classify",
    "classify_entry",
    "role_of",
    "head_common_tail",
    "SUPPORT_CLASSES",
]

# (class, role) in id order; id 0 = unlabeled.
_CLASS_DEFS: List[Tuple[str, str]] = [
    ("unlabeled", "none"),
    ("wall", "structure"),
    ("floor", "structure"),
    ("ceiling", "structure"),
    ("door", "structure"),
    ("window", "structure"),
    ("chair", "floor"),
    ("armchair", "floor"),
    ("sofa", "wall"),
    ("table", "floor"),
    ("desk", "wall"),
    ("bed", "wall"),
    ("nightstand", "wall"),
    ("lamp", "size"),
    ("plant", "size"),
    ("bookcase", "wall"),
    ("cabinet", "wall"),
    ("wardrobe", "wall"),
    ("tv", "top"),
    ("tv_stand", "wall"),
    ("refrigerator", "wall"),
    ("oven", "wall"),
    ("sink", "wall"),
    ("toilet", "wall"),
    ("radiator", "wall"),
    ("stool", "floor"),
    ("bench", "floor"),
    ("piano", "wall"),
    ("box", "floor"),
    ("speaker", "top"),
    ("fan", "top"),
    ("clock", "top"),
    ("toy", "size"),
    ("cup", "top"),
    ("bottle", "top"),
    ("bag", "size"),
    ("trash_can", "floor"),
    ("whiteboard", "wall"),
    ("guitar", "floor"),
    ("kitchen_appliance", "top"),
    ("food", "top"),
    ("game_table", "floor"),
    ("ball", "top"),
    ("extinguisher", "floor"),
    ("book", "top"),
    ("computer", "top"),
    ("washing_machine", "wall"),
    ("bathtub", "wall"),
]

CLASSES: List[str] = [c for c, _ in _CLASS_DEFS]
CLASS_ROLE: Dict[str, str] = dict(_CLASS_DEFS)
STRUCTURE_CLASSES = ("wall", "floor", "ceiling", "door", "window")
#: Classes whose top surface carries ``"top"`` objects.
SUPPORT_CLASSES = ("table", "desk", "nightstand", "cabinet", "bookcase", "tv_stand", "box")

_ID = {c: i for i, c in enumerate(CLASSES)}

# First match wins: order matters ("bedside table" before "table", "table fan" before "table").
_RULES: List[Tuple[str, Optional[str]]] = [
    # excluded outright: outdoor, vehicles, structure parts, wall-mounted / ceiling fittings, tiny flat things
    (r"upper|range hood|\bhood\b|ceiling|wall (light|lamp|spotlight|hanger|socket|switch|plug|type|rj45|antenna|dimmer|double)"
     r"|plug|switch|socket|outdoor|street|park |lamppost|porch|stone lantern|railing|fence|swimming|pool lounge"
     r"|child hut|swing|seesaw|umbrella|wheelbarrow|shipping|truck|fork lift|motorbike|mailbox|flower box|plant box"
     r"|rock\b|pallet|tatami|shower|urinal|towel|toilet (brush|paper)|spiral|staircase|elevator|escalator|garage"
     r"|relax chair|deck chair|beach chair|emergency sign|number lock|locker|comb|scissors|ruler|text marker|card game"
     r"|puzzle|slippers|bootie|iphone|phone|headphones|tennis racket|cooktop|\bstove\b|knife|potty|rigged"
     r"|curtain|carpet|rug|doormat|bathmat|parking|pedestrian|rail|tree|bush|hedge|pine|maple|cypress|poplar"
     r"|acacia|bamboo|palm|beech|blossom", None),
    (r"bedside table|nightstand", "nightstand"),
    (r"television cabinet|tv stand|tv cabinet", "tv_stand"),
    (r"\btv\b|television|flat tv|screen$", "tv"),
    (r"table fan|\bfan\b", "fan"),
    (r"pool table|football table|table tennis$|billiard", "game_table"),
    (r"technical table|desk table|\bdesk\b(?! lamp)|workbench", "desk"),
    (r"desk lamp|\blamp\b|lantern|chandelier|light$", "lamp"),
    (r"armchair|arm chair", "armchair"),
    (r"piano bench|\bbench\b", "bench"),
    (r"stool", "stool"),
    (r"chair", "chair"),
    (r"sofa|couch|futon", "sofa"),
    (r"\bbed\b|crib|day bed|futon", "bed"),
    (r"bookcase|shelves|shelf", "bookcase"),
    (r"wardrobe|clothes rack", "wardrobe"),
    (r"refrigerator|fridge|freezer", "refrigerator"),
    (r"oven|cooker", "oven"),
    (r"washbasin|vanity|\bsink\b|\bbasin\b|lavatory", "sink"),
    (r"toilet|bidet", "toilet"),
    (r"radiator", "radiator"),
    (r"piano", "piano"),
    (r"cabinet|cupboard|dresser|drawers|chest(?! freezer)|island", "cabinet"),
    (r"\btable\b", "table"),
    (r"orchid|cactus|plant|flower|ficus|yucca|succulent|spathiphyllum|bonsai|tulip|lily", "plant"),
    (r"speaker|stereo|radio|mp3", "speaker"),
    (r"clock", "clock"),
    (r"teddy|rocking horse|wood toy|biplane|\bdoll\b|toy train|xylophone|rubik|car model", "toy"),
    (r"cup cake|cupcake", "food"),
    (r"cup\b|mug|glass$|beer glass|cocktail glass", "cup"),
    (r"bottle|flacon|milk|cosmetics pot", "bottle"),
    (r"handbag|briefcase|backpack|suitcase|shopping basket", "bag"),
    (r"dustbin|trash|recycling bin", "trash_can"),
    (r"white ?board", "whiteboard"),
    (r"guitar", "guitar"),
    (r"mixer|coffee brewer|coffee machine|coffee maker|toaster|microwave|blender|kettle|squeezer|deep fryer"
     r"|sandwich maker", "kitchen_appliance"),
    (r"bread|butter|hot dog|cup cake|cake|hamburger|french fries|steak|roasted chicken|apples", "food"),
    (r"basketball|soccer ball|\bball\b", "ball"),
    (r"extinguisher", "extinguisher"),
    (r"\bbook\b|newspaper", "book"),
    (r"laptop|imac|ibook|keyboard|tablet", "computer"),
    (r"washing machine|dryer machine", "washing_machine"),
    (r"bath\b|bathtub|jacuzzi", "bathtub"),
    (r"\bbox\b|crate|barrel|chest$", "box"),
]
_COMPILED = [(re.compile(p), c) for p, c in _RULES]

#: Most to least frequent (real indoor scans, ScanNet200-like); every class once.
FREQUENCY_ORDER: List[str] = [
    "wall", "floor", "chair", "table", "cabinet", "ceiling", "door", "window", "sofa", "bed",
    "bookcase", "desk", "lamp", "plant", "box", "tv", "armchair", "trash_can", "nightstand", "sink",
    "toilet", "book", "bag", "cup", "bottle", "wardrobe", "radiator", "stool", "refrigerator", "computer",
    "tv_stand", "kitchen_appliance", "speaker", "clock", "oven", "whiteboard", "bench", "toy", "fan",
    "bathtub", "washing_machine", "piano", "guitar", "food", "ball", "game_table", "extinguisher",
]
assert sorted(FREQUENCY_ORDER) == sorted(CLASSES[1:]), "FREQUENCY_ORDER must list every class once"


def class_id(name: str) -> int:
    """Stable id of a class name (``KeyError`` if unknown)."""
    return _ID[name]


def class_name(cid: int) -> str:
    return CLASSES[int(cid)]


def classify(name: str) -> Optional[str]:
    """Class of a catalog model name, or None when the model is not used in rooms."""
    n = name.strip().lower()
    for rx, cls in _COMPILED:
        if rx.search(n):
            return cls
    return None


def classify_entry(entry: CatalogEntry) -> Optional[str]:
    """Class of a catalog entry (None: not used). Doors / windows and odd rotations are excluded."""
    if entry.door_or_window or entry.model_rotation is not None:
        return None
    if min(entry.width, entry.depth, entry.height) <= 0:
        return None
    return classify(entry.name)


def role_of(cls: str, size_m: Sequence[float]) -> str:
    """Placement role of a model of class ``cls`` with ``(width, depth, height)`` in metres."""
    role = CLASS_ROLE[cls]
    if role == "size":
        w, d, h = size_m
        return "top" if (h < 0.6 and w * d < 0.2) else "floor"
    return role


def head_common_tail(order: Sequence[str]) -> Dict[str, List[str]]:
    """Cut a most-to-least-frequent class list into thirds (head gets the remainder first)."""
    n = len(order)
    a = (n + 2) // 3
    b = a + (n - a + 1) // 2
    return {"head": list(order[:a]), "common": list(order[a:b]), "tail": list(order[b:])}
