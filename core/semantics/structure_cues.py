"""Room structure as a 3D cue of the segment descriptors: floor, walls and ceiling named by geometry.

A blank wall or ceiling has little appearance to name it by, and a floor seen at a grazing angle
looks like whatever lies on it; yet in the cloud each is plain to see: the room's box
(:func:`core.scene.room_box.find_room_box`: the floor of the alignment, the walls and ceiling as the
outermost dense layers beyond the cameras). A segment most of whose points lie on one side of the
box, and whose thinnest axis is that side's normal, is that surface; its descriptor is pulled towards
the text embedding of the surface's name::

    d' = normalise(d + weight * t(name))

so a query or a label still weighs the image's evidence (a rug on the floor stays a rug when its
crops say so strongly). ``weight`` 0 turns the cue off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scene import SemanticScene
from ..scene.extent import scene_extent
from ..scene.align import room_axes
from ..scene.room_box import RoomBox, find_room_box
from .text_encoder import prompt

SURFACES = ("floor", "wall", "ceiling")


@dataclass
class StructureSettings:
    weight: float = 0.0  # pull of a structure segment's descriptor towards its surface's name; 0 = off
    surfaces: tuple[str, ...] = SURFACES  # the surfaces whose segments are pulled (the others are only counted)
    tolerance: float = 0.015  # a point is on a side within this fraction of the cloud's extent
    min_on: float = 0.6  # fraction of a segment's points on one side
    min_cos: float = 0.9  # |cos| between the segment's thinnest axis and the side's normal
    box_bins: int = 150  # the box's layer thickness: the cloud's extent / box_bins (as the sfm engine)


def side_kinds(box: RoomBox) -> list[str]:
    """The surface each side of ``box`` is: its first side is the floor (``find_room_box``), a side
    facing away from the floor is the ceiling, the others are walls."""
    up = -box.normals[0]
    return ["floor"] + ["ceiling" if n @ up > 0.9 else "wall" for n in box.normals[1:]]


def structure_segments(scene: SemanticScene, st: StructureSettings | None = None, box: RoomBox | None = None
                       ) -> np.ndarray:
    """(S,) index into ``SURFACES`` of the surface each segment of ``scene`` lies on, -1 for none.
    ``box``: the room's box if already found (else from the scene's points and cameras)."""
    st = st or StructureSettings()
    S = len(scene.segments)
    out = np.full(S, -1, np.int64)
    pts = np.asarray(scene.points, np.float64)
    if S == 0 or len(pts) < 100:
        return out
    extent = scene_extent(pts)
    if box is None:
        box = find_room_box(pts, np.asarray(scene.cameras.world_from_camera, np.float64), extent / st.box_bins,
                            axes=room_axes(scene))
    if box is None:
        return out
    kinds = side_kinds(box)
    seg = np.asarray(scene.segment_id)
    valid = seg >= 0
    on = np.abs(pts[valid] @ box.normals.T - box.offsets) < st.tolerance * extent  # (n, sides)
    s = seg[valid].astype(np.int64)
    count = np.maximum(np.bincount(s, minlength=S), 1)
    frac = np.stack([np.bincount(s, on[:, k], S) for k in range(len(kinds))], 1) / count[:, None]  # (S, sides)
    best = frac.argmax(1)
    thin = np.asarray(scene.segments.box_axes, np.float64)[:, 2]  # each segment's thinnest axis
    cos = np.abs(np.einsum("sj,sj->s", thin, box.normals[best]))
    ok = (frac[np.arange(S), best] >= st.min_on) & (cos >= st.min_cos)
    out[ok] = [SURFACES.index(kinds[k]) for k in best[ok]]
    return out


def apply_structure_cues(scene: SemanticScene, text_encoder, st: StructureSettings) -> dict:
    """Pull the descriptors of ``scene``'s structure segments towards their surface's name, in place.

    text_encoder: embeds prompts in the scene's text space (``query.text_encoder_for``).
    Returns what the scene records: ``{"weight", "segments": {surface: count}}``.
    """
    unknown = set(st.surfaces) - set(SURFACES)
    if unknown:
        raise ValueError(f"unknown surfaces {sorted(unknown)}; use {', '.join(SURFACES)}")
    kind = structure_segments(scene, st)
    record = {"weight": st.weight, "segments": {name: int((kind == i).sum()) for i, name in enumerate(SURFACES)}}
    hit = np.flatnonzero(np.isin(kind, [SURFACES.index(name) for name in st.surfaces]))
    if st.weight <= 0 or not len(hit):
        return record
    t = np.asarray(text_encoder.encode([prompt(name) for name in SURFACES]), np.float64)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    d = np.array(scene.segments.descriptor, np.float64)
    if t.shape[1] != d.shape[1]:
        return {**record, "weight": 0.0, "reason": f"text embeddings of dimension {t.shape[1]}, descriptors {d.shape[1]}"}
    d[hit] += st.weight * t[kind[hit]]
    d[hit] /= np.maximum(np.linalg.norm(d[hit], axis=1, keepdims=True), 1e-12)
    scene.segments.descriptor = d.astype(np.float32)
    return record
