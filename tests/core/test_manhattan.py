"""The room's axes from the straight lines of posed images: a ray-cast box room, turned by a known rotation."""

import numpy as np

from ov3r.core.scene.manhattan import line_plane_normals, manhattan_axes
from ov3r.core.scene.room_box import RoomBox


def _rot(axis, deg):
    a = np.radians(deg)
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def _look(eye, target, up):
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], 1)  # OpenCV: x right, y down, z forward
    T[:3, 3] = eye
    return T


def _room_images(turn: np.ndarray, size=(160, 120)):
    """Flat-shaded images of a 4 x 3 x 2.5 m box room (each side its own grey) from 8 cameras, the world
    turned by ``turn`` (3,3); -> images, K, world_from_camera (8,4,4)."""
    w, h = size
    K = np.array([[110.0, 0, w / 2], [0, 110.0, h / 2], [0, 0, 1]])
    normals = np.array([[0, 0, -1.0], [0, 0, 1], [-1.0, 0, 0], [1, 0, 0], [0, -1.0, 0], [0, 1, 0]])
    offsets = np.array([0.0, 2.5, 0, 4, 0, 3])
    box = RoomBox(normals @ turn.T, offsets)
    grey = np.array([60, 230, 110, 150, 190, 90])
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
    images, poses = [], []
    for yaw in np.arange(0, 360, 45):
        eye = np.array([2.0, 1.5, 1.4])
        target = eye + [np.cos(np.radians(yaw)), np.sin(np.radians(yaw)), -0.25]
        T = _look(eye, target, np.array([0, 0, 1.0]))
        T[:3, :3], T[:3, 3] = turn @ T[:3, :3], turn @ T[:3, 3]
        d = rays @ T[:3, :3].T
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d @ box.normals.T > 1e-9, (box.offsets - box.normals @ T[:3, 3]) / (d @ box.normals.T), np.inf)
        side = np.argmin(np.where(t > 0, t, np.inf), 1)
        images.append(np.repeat(grey[side].reshape(h, w, 1), 3, 2).astype(np.uint8))
        poses.append(T)
    return images, K, np.array(poses)


def test_axes_of_a_turned_room_from_its_lines():
    turn = _rot([1, 0.3, 0], 6.0) @ _rot([0, 0, 1], 27.0)
    images, K, poses = _room_images(turn)
    n, length = line_plane_normals(images[0], K, poses[0])
    assert len(n) >= 3 and np.allclose(np.linalg.norm(n, axis=1), 1) and (length > 0).all()
    prior = turn @ _rot([0, 1, 0], 5.0) @ np.array([0, 0, 1.0])  # the cameras' up, 5 degrees off
    # a bare box has only its 12 edges (about 24 segments in 8 views): below the default minimum of 50
    assert manhattan_axes(images, [K] * len(images), poses, prior) is None
    axes = manhattan_axes(images, [K] * len(images), poses, prior, min_lines=10)
    assert axes is not None and np.allclose(axes @ axes.T, np.eye(3), atol=1e-6)
    true = turn.T  # rows: the room's x, y, up in the world
    assert np.degrees(np.arccos(min(1.0, axes[2] @ true[2]))) < 0.5
    yaw_err = np.degrees(np.arccos(min(1.0, np.abs(axes[0] @ true[:2].T).max())))
    assert yaw_err < 0.5


def test_too_few_lines_give_no_axes():
    blank = [np.full((60, 80, 3), 128, np.uint8)] * 3
    K = np.array([[60.0, 0, 40], [0, 60, 30], [0, 0, 1]])
    assert manhattan_axes(blank, [K] * 3, np.repeat(np.eye(4)[None], 3, 0), np.array([0, -1.0, 0])) is None


def test_the_scene_aligns_to_its_recorded_axes():
    """auto_align squares the room to ``metadata["room_axes"]`` and turns them with the scene."""
    from ov3r.core.scene import Cameras, SemanticScene
    from ov3r.core.scene.align import auto_align

    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(0, 4, (4000, 2)), np.zeros(4000)]
    wall = np.c_[rng.uniform(0, 4, 1500), np.full(1500, 3.0), rng.uniform(0, 2.5, 1500)]
    clutter = rng.uniform([0.5, 0.5, 0.2], [3.5, 2.5, 1.2], (1500, 3))  # tilted layers an axis fit could follow
    turn = _rot([1, 0.3, 0], 6.0) @ _rot([0, 0, 1], 27.0)
    pts = np.vstack([floor, wall, clutter]) @ turn.T
    poses = np.array([_look(np.array([2.0, 1.5, 1.4]), np.array([2.0 + np.cos(a), 1.5 + np.sin(a), 1.2]),
                            np.array([0, 0, 1.0])) for a in np.linspace(0, 6, 8)])
    poses[:, :3, :3] = turn @ poses[:, :3, :3]
    poses[:, :3, 3] = poses[:, :3, 3] @ turn.T
    cams = Cameras(np.repeat(np.eye(3, dtype=np.float32)[None], 8, 0), poses.astype(np.float32),
                   np.arange(8, dtype=np.float64), np.arange(8, dtype=np.int32), (64, 48))
    scene = SemanticScene.from_points(pts.astype(np.float32), np.zeros((len(pts), 3), np.uint8), cameras=cams,
                                      metadata={"room_axes": turn.T.tolist()})
    aligned, why = auto_align(scene)
    assert why == ""
    axes = np.asarray(aligned.metadata["room_axes"])
    assert np.allclose(axes[2], [0, 0, 1], atol=1e-6)
    assert np.isclose(np.abs(axes[0]).max(), 1.0, atol=1e-6)  # a wall direction along X or Y
    on_floor = np.asarray(aligned.points)[: len(floor)]
    assert np.abs(on_floor[:, 2]).max() < 0.02
