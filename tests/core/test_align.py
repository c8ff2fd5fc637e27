"""Scene alignment on a rendered benchmark room (GT cloud + GT cameras, no reconstruction):
moved by a random similarity, the aligned room has its floor within 2 degrees of the XY
plane at Z=0, and after a scale from one known distance its dimensions are within 3%."""

from __future__ import annotations

import numpy as np
import pytest

from core.scenegen.suite import cached_scene, load_scene, test_suite
from core.scene import Cameras, SemanticScene
from core.scene.align import alignment_transform, scale_transform, transform_points, transform_scene


@pytest.fixture(scope="module")
def room():
    cfg = test_suite(frames=4)[0]  # test_living 5.6 x 4.4 x 2.6 m; 4 frames render in ~a minute
    return cfg, load_scene(cached_scene(cfg))


def _random_similarity(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    t = np.eye(4)
    t[:3, :3] = 0.37 * q  # an arbitrary reconstruction scale
    t[:3, 3] = rng.standard_normal(3) * 3
    return t


def _scene(data, t: np.ndarray) -> SemanticScene:
    gt, cams = data["gt_cloud"], data["cameras"]
    m = len(cams["world_from_camera"])
    wfc = cams["world_from_camera"].astype(np.float64)
    cameras = Cameras(np.repeat(cams["intrinsics"][None].astype(np.float32), m, 0), wfc.astype(np.float32),
                      cams["timestamps"], np.arange(m, dtype=np.int32), (640, 480))
    scene = SemanticScene.from_points(gt["points"], gt["colors"], cameras=cameras)
    return transform_scene(scene, t)


def _floor_tilt_and_height(points: np.ndarray) -> tuple[float, float]:
    c = points.mean(0)
    _, _, vt = np.linalg.svd(points - c)
    return float(np.degrees(np.arccos(abs(vt[2][2])))), float(np.abs(points[:, 2]).mean())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_floor_and_scale(room, seed):
    _cfg, data = room
    t_moved = _random_similarity(seed)
    scene = _scene(data, t_moved)
    t_align = alignment_transform(scene.points, scene.cameras.world_from_camera)
    aligned = transform_scene(scene, t_align)
    floor = data["gt_cloud"]["semantic"] == data["classes"]["classes"].index("floor")
    tilt, height = _floor_tilt_and_height(aligned.points[floor])
    assert tilt < 2.0
    assert height < 0.01 * np.ptp(aligned.points, 0).max()  # floor at Z=0 (scale not yet real)
    # The cameras stay rigid and above the floor, looking roughly horizontally.
    assert (aligned.cameras.world_from_camera[:, 2, 3] > 0).all()

    # One known distance: two GT points 1 m+ apart (e.g. measured by the artist with a tape).
    gt = data["gt_cloud"]["points"].astype(np.float64)
    i, j = int(np.argmin(gt[:, 0] + gt[:, 1])), int(np.argmax(gt[:, 0] + gt[:, 1]))
    true = float(np.linalg.norm(gt[i] - gt[j]))
    scaled = transform_scene(aligned, scale_transform(aligned.points[i], aligned.points[j], true))
    dims = _dims(scaled.points)
    # The 4 rendered frames see part of the room: its true dimensions are those of the GT cloud
    # in the room's own (axis-aligned, metric) frame.
    true_dims = _dims(gt)
    assert dims[2] == pytest.approx(true_dims[2], rel=0.03)
    # Walls along the axes: X / Y extents are the footprint (possibly swapped), not a diagonal.
    assert dims[:2] == pytest.approx(true_dims[:2], rel=0.03) or dims[1::-1] == pytest.approx(true_dims[:2], rel=0.03)


def _dims(points: np.ndarray) -> np.ndarray:
    return np.percentile(points, 99.8, 0) - np.percentile(points, 0.2, 0)

def test_scale_transform_rejects_bad_input():
    with pytest.raises(ValueError):
        scale_transform(np.zeros(3), np.zeros(3), 1.0)
    with pytest.raises(ValueError):
        scale_transform(np.zeros(3), np.ones(3), 0.0)


def test_transform_points_roundtrip():
    t = _random_similarity(5)
    p = np.random.default_rng(0).standard_normal((10, 3))
    back = transform_points(transform_points(p, t), np.linalg.inv(t))
    assert np.allclose(back, p)


def _room_with_noise_under_its_floor(rng: np.random.Generator) -> np.ndarray:
    """(N,3) z-up points of a 4 x 3 x 2.5 m room: walls, a table, a sparsely measured floor (3 %), and
    mismatched depth scattered under the floor (4 %, as a plain floor's plane sweep gives)."""
    n = 40_000
    walls = rng.uniform([-2, -1.5, 0], [2, 1.5, 2.5], (int(0.63 * n), 3))
    side = rng.integers(0, 4, len(walls))
    walls[side == 0, 0], walls[side == 1, 0], walls[side == 2, 1], walls[side == 3, 1] = -2, 2, -1.5, 1.5
    table = rng.uniform([-0.5, -0.4, 0.74], [0.5, 0.4, 0.76], (int(0.3 * n), 3))
    floor = rng.uniform([-2, -1.5, -0.002], [2, 1.5, 0.002], (int(0.03 * n), 3))
    below = rng.uniform([-2, -1.5, -1.5], [2, 1.5, -0.1], (int(0.04 * n), 3))
    return np.concatenate([walls, table, floor, below])


def test_a_floor_along_known_axes_is_found_over_noise_under_it(monkeypatch):
    import core.scene.align as align

    pts = _room_with_noise_under_its_floor(np.random.default_rng(0))
    cams = np.repeat(np.eye(4)[None], 3, 0)
    cams[:, :3, 3] = [[0, 0, 1.5], [0.5, 0, 1.4], [-0.5, 0.2, 1.6]]
    a = alignment_transform(pts, cams, axes=np.eye(3))
    assert abs(transform_points(np.array([[0.0, 0.0, 0.0]]), a)[0, 2]) < 0.02  # the floor lands on Z = 0
    monkeypatch.setattr(align, "FLOOR_MAX_BELOW", (0.02,))  # with 2 % below it allowed only: no floor
    with pytest.raises(ValueError, match="no floor"):
        alignment_transform(pts, cams, axes=np.eye(3))
