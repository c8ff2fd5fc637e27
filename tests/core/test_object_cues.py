"""Where a segment stands as a cue of its descriptor (``semantics.object_cues``), on a hand-built room."""

from __future__ import annotations

import json

import numpy as np
from ov3r.core.scene import Cameras, SemanticScene
from ov3r.core.semantics.lifting import segment_table
from ov3r.core.semantics.object_cues import (ObjectCueSettings, apply_object_cues, class_fit, load_prior,
                                             logit_shift_vectors, segment_spans)
from ov3r.core.semantics.text_encoder import TextEncoder, prompt

NAMES = ["floor", "wall", "table top", "cup"]


def _plane(rng, n, lo, hi):
    return rng.uniform(lo, hi, size=(n, 3))


def _room(scale: float = 1.0, tilt: bool = True):
    """A 4 x 4 x 2.6 m room (floor on z = 0, z up): floor, one wall, a 1.2 x 0.8 m table top at 0.74 m
    and a cup on it; 12 cameras at 1.5 m turning on the spot. The whole scene scaled by ``scale`` and,
    with ``tilt``, rotated off the axes (the alignment must find the floor)."""
    rng = np.random.default_rng(0)
    parts = [_plane(rng, 6000, (-2, -2, 0), (2, 2, 0)), _plane(rng, 4000, (-2, 2, 0), (2, 2, 2.6)),
             _plane(rng, 1500, (-0.6, -0.4, 0.74), (0.6, 0.4, 0.74)), _plane(rng, 300, (-0.04, -0.04, 0.74),
                                                                               (0.04, 0.04, 0.84))]
    pts = np.concatenate(parts)
    seg = np.repeat(np.arange(len(parts)), [len(p) for p in parts]).astype(np.int32)
    wfc = np.tile(np.eye(4), (12, 1, 1))
    for i, yaw in enumerate(np.linspace(0, 2 * np.pi, 12, endpoint=False)):
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        wfc[i, :3, :3] = np.stack([np.cross(down, fwd), down, fwd], 1)  # OpenCV: x right, y down, z forward
        wfc[i, :3, 3] = (0.3 * np.cos(yaw), 0.3 * np.sin(yaw), 1.5)
    T = np.eye(4)
    if tilt:
        a, b = 0.3, 0.2
        Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        Rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
        T[:3, :3] = Rz @ Rx
    T[:3, :3] *= scale
    T[:3, 3] = (0.5, -1.0, 2.0)
    pts = pts @ T[:3, :3].T + T[:3, 3]
    wfc = T @ wfc
    wfc[:, :3, :3] /= scale  # cameras stay rigid
    K = np.array([[200.0, 0, 160], [0, 200.0, 120], [0, 0, 1]])
    cams = Cameras(np.repeat(K[None], 12, 0).astype(np.float32), wfc.astype(np.float32),
                   np.arange(12, dtype=np.float64), np.arange(12, dtype=np.int32), (320, 240))
    scene = SemanticScene.from_points(pts.astype(np.float32), np.full((len(pts), 3), 128, np.uint8), cameras=cams)
    scene.segment_id = seg
    desc = rng.normal(size=(len(parts), 384))
    scene.segments = segment_table(scene.points, seg, (desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype(np.float32))
    return scene


def _prior(tmp_path) -> str:
    """A prior of four classes: walls floor to ceiling, tables 0.72-0.76 m high, cups on them, rugs on the floor."""
    classes = {"wall": ([0.0] * 3, [2.5, 2.6, 2.8], [3.0, 4.0, 5.0]),
               "table": ([0.0] * 3, [0.72, 0.75, 0.76], [1.3, 1.5, 1.8]),
               "cup": ([0.72, 0.75, 0.9], [0.82, 0.85, 1.0], [0.1, 0.12, 0.1]),
               "floor": ([0.0] * 3, [0.0] * 3, [5.0, 6.0, 7.0])}
    f = tmp_path / "prior.json"
    f.write_text(json.dumps({"classes": {c: {"z0": a, "z1": b, "reach": r} for c, (a, b, r) in classes.items()}}))
    return str(f)


def test_spans_are_measured_above_the_found_floor_in_eye_height_units():
    st = ObjectCueSettings(levels=3)  # the 5 %, 50 % and 95 % quantiles of each segment's heights
    heights, reach, ok = segment_spans(_room(), st)
    assert ok.all()
    np.testing.assert_allclose(heights[0], 0.0, atol=0.03)  # floor
    np.testing.assert_allclose(heights[1], [0.13, 1.3, 2.47], atol=0.06)  # wall: 0..2.6 m
    np.testing.assert_allclose(heights[2], 0.74, atol=0.03)  # table top
    assert 1.2 < reach[2] < 1.45  # its footprint's diagonal (5-95 % of 1.2 x 0.8 m: 1.30)
    np.testing.assert_allclose(heights[3], [0.745, 0.79, 0.835], atol=0.03)  # cup
    assert reach[3] < 0.12
    # own geometry has no scale: the same room at 2.5 x reads the same in units of the camera height
    h2, r2, _ = segment_spans(_room(scale=2.5), st)
    np.testing.assert_allclose(h2, heights, atol=0.03)
    np.testing.assert_allclose(r2, reach, atol=0.03)


def test_a_segment_fits_the_classes_whose_objects_could_contain_it(tmp_path):
    prior = load_prior(_prior(tmp_path))
    classes = ["wall", "table", "cup", "floor"]
    heights = np.array([[0.74, 0.74],   # a table top: inside a table, too wide for a cup, off the floor
                        [0.3, 2.5],     # floor to ceiling: all of it only in a wall
                        [0.0, 0.0],     # on the floor
                        [0.0, 0.74]])   # half floor, half table top
    reach = np.array([1.3, 2.9, 2.9, 2.9])
    fit = class_fit(heights, reach, prior, classes, tolerance=0.1)
    np.testing.assert_allclose(fit[0, [0, 1, 3]], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(fit[0, 2], (0.2 + 0.22) / 1.3 / 3)  # two cups at its height, a sixth of its reach
    np.testing.assert_allclose(fit[1], [1.0, 0.5 * (1.4 + 1.6 + 1.9) / 2.9 / 3, 0.0, 0.0])  # half of it a table's height
    np.testing.assert_allclose(fit[2], [1.0, (1.4 + 1.6 + 1.9) / 2.9 / 3, 0.0, 1.0])  # a wall reaches the floor too (z0 = 0)
    np.testing.assert_allclose(fit[3, 3], 0.5)  # the floor explains half of a segment that leaks onto a table


def test_the_shift_moves_each_class_cosine_by_its_log_prior():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(6, 384))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    shifts = rng.uniform(-0.3, 0.0, size=(4, 6))
    u = logit_shift_vectors(t, shifts, ridge=1e-6)
    np.testing.assert_allclose(u @ t.T, shifts, atol=1e-4)


def test_the_cue_ranks_a_table_top_as_table_and_a_wall_as_wall(tmp_path):
    enc = TextEncoder()
    names = ["floor", "wall", "table", "cup"]
    t = dict(zip(names, enc.encode([prompt(c) for c in names])))
    scene = _room()
    # every segment's appearance torn between two names: table top between table and cup, wall between wall and cup
    mix = np.stack([t["floor"] + t["table"], t["wall"] + t["cup"], t["table"] + t["cup"], t["cup"] + t["table"]])
    scene.segments.descriptor = (mix / np.linalg.norm(mix, axis=1, keepdims=True)).astype(np.float32)
    record = apply_object_cues(scene, enc, ObjectCueSettings(weight=0.2, prior=_prior(tmp_path)))
    assert record["segments"] == 4 and record["classes"] == 4
    d = scene.segments.descriptor
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    tt = np.stack([t[c] for c in names])
    best = [names[int(np.argmax(tt @ d[i]))] for i in range(4)]
    assert best[:3] == ["floor", "wall", "table"], best
    # the cup fits a cup and, by span, a table too: the cue leaves that choice to its appearance
    assert best[3] in ("cup", "table")
    off = _room()
    before = np.array(off.segments.descriptor, copy=True)
    assert apply_object_cues(off, enc, ObjectCueSettings(weight=0.0))["segments"] == 0
    np.testing.assert_array_equal(off.segments.descriptor, before)


def test_the_shipped_prior_knows_where_rooms_put_things():
    prior = load_prior(None)
    assert {"wall", "floor", "ceiling", "door", "window", "table", "cup", "sofa", "bed"} <= set(prior)
    table = np.median(prior["table"], 0)
    assert table[0] == 0.0 and 0.6 < table[1] < 0.9
    assert np.median(prior["cup"][:, 0]) > 0.3  # cups stand on something
    assert np.median(prior["ceiling"][:, 0]) > 2.3


def test_the_threshold_calibrated_with_the_cue_is_kept_per_encoder_and_weight(tmp_path):
    from ov3r.core.semantics.object_cues import calibrated_threshold, write_calibration

    prior = _prior(tmp_path)
    assert calibrated_threshold("abc", 0.06, prior) is None
    write_calibration("abc", 0.06, 0.42, {"rooms": 8}, prior)
    write_calibration("abc", 0.1, 0.33, {"rooms": 8}, prior)
    write_calibration("abc", 0.06, 0.44, {"rooms": 8}, prior)  # a recalibration replaces the old value
    assert calibrated_threshold("abc", 0.06, prior) == 0.44
    assert calibrated_threshold("abc", 0.1, prior) == 0.33
    assert calibrated_threshold("other encoder", 0.06, prior) is None
    assert set(load_prior.__wrapped__(prior)) == {"wall", "table", "cup", "floor"}  # the classes are untouched


def test_the_validated_weight_has_its_threshold_calibrated_for_the_default_encoder():
    """With the cue on, the stage records the threshold calibrated with it; another weight or encoder
    needs ``OV3R_OBJECT_WEIGHT=<w> python -m core.bench.other_threshold --write`` on the validation rooms."""
    from ov3r.core.hashing import file_sha256
    from ov3r.core.models.shipped import COMPACT_DEFAULT
    from ov3r.core.semantics.object_cues import VALIDATED_WEIGHT, calibrated_threshold

    thr = calibrated_threshold(file_sha256(COMPACT_DEFAULT), VALIDATED_WEIGHT)
    assert thr is not None and 0.2 < thr < 0.6
