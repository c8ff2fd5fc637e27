"""Floor, walls and ceiling named by the room's geometry (``semantics.structure_cues``), on a ray-cast room."""

from __future__ import annotations

import numpy as np
import pytest
from ov3r.core.geometry.sfm.depth_filter import backproject
from ov3r.core.scene import Cameras, SemanticScene
from ov3r.core.semantics.lifting import segment_table
from ov3r.core.semantics.structure_cues import SURFACES, StructureSettings, apply_structure_cues, structure_segments
from ov3r.core.semantics.text_encoder import TextEncoder, prompt
from sfm_synthetic import room_orbit

# render_room: the room [-2,2] x [-1.5,1.5] x [-2,2], world y down (floor y = 1.5), a box on the floor
NAMES = ["floor", "ceiling", "wall x-", "wall x+", "wall z-", "wall z+", "box top", "box sides"]


def _room_scene():
    K, poses, imgs, depths = room_orbit(n=8, w=160, h=120, arc_deg=120.0)
    pts = np.concatenate([backproject(d, K, p)[::2] for d, p in zip(depths, poses)])
    x, y, z = pts.T
    e = 1e-3
    truth = np.select([np.abs(y - 1.5) < e, np.abs(y + 1.5) < e, np.abs(x + 2) < e, np.abs(x - 2) < e,
                       np.abs(z + 2) < e, np.abs(z - 2) < e, np.abs(y - 0.3) < e], np.arange(7), 7)
    cams = Cameras(np.repeat(K[None], len(poses), 0).astype(np.float32), poses.astype(np.float32),
                   np.arange(len(poses), dtype=np.float64), np.arange(len(poses), dtype=np.int32), (160, 120))
    scene = SemanticScene.from_points(pts, np.full((len(pts), 3), 128, np.uint8), cameras=cams)
    present = np.unique(truth)
    scene.segment_id = np.searchsorted(present, truth).astype(np.int32)  # one segment per present surface
    rng = np.random.default_rng(0)
    desc = rng.normal(size=(len(present), 384)).astype(np.float32)
    scene.segments = segment_table(scene.points, scene.segment_id, desc / np.linalg.norm(desc, axis=1, keepdims=True))
    return scene, [NAMES[i] for i in present]


def test_the_rooms_surfaces_are_found_and_the_box_is_not():
    scene, names = _room_scene()
    assert {"floor", "box top", "box sides"} <= set(names) and sum(n.startswith("wall") for n in names) >= 2
    kind = structure_segments(scene)
    got = {n: (SURFACES[k] if k >= 0 else None) for n, k in zip(names, kind)}
    for n in names:
        want = None if n.startswith("box") else n.split()[0]
        assert got[n] == want, got


def test_the_cue_pulls_only_structure_descriptors_towards_their_name():
    scene, names = _room_scene()
    before = np.array(scene.segments.descriptor, copy=True)
    enc = TextEncoder()
    record = apply_structure_cues(scene, enc, StructureSettings(weight=1.0))
    assert record["segments"]["floor"] == 1 and record["segments"]["wall"] >= 2
    t = enc.encode([prompt(s) for s in SURFACES])
    after = scene.segments.descriptor
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    for i, n in enumerate(names):
        if n.startswith("box"):
            np.testing.assert_array_equal(after[i], before[i])
        else:  # now nearest to its own surface's name among the three
            assert SURFACES[int(np.argmax(t @ after[i]))] == n.split()[0], n
    off = _room_scene()[0]
    apply_structure_cues(off, enc, StructureSettings(weight=0.0))
    np.testing.assert_array_equal(off.segments.descriptor, before)
    floor_only = _room_scene()[0]
    apply_structure_cues(floor_only, enc, StructureSettings(weight=1.0, surfaces=("floor",)))
    moved = [n for i, n in enumerate(names) if not np.array_equal(floor_only.segments.descriptor[i], before[i])]
    assert moved == ["floor"]
    with pytest.raises(ValueError, match="unknown surfaces"):
        apply_structure_cues(floor_only, enc, StructureSettings(weight=1.0, surfaces=("roof",)))
