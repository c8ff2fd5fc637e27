"""Synthetic fixtures for the semantics tests: boxes on a floor seen by a ring of cameras,
and a stand-in image/text encoder whose space is a one-hot per word."""

from __future__ import annotations

import numpy as np
from ov3r.core.scene import Cameras, SemanticScene
from ov3r.core.semantics.projection import project, zbuffer
from scipy import ndimage

BOXES = [  # centre, size, colour
    ((-0.8, 0.0, 0.4), (0.6, 0.6, 0.8), (200, 40, 40)),
    ((0.7, 0.5, 0.3), (0.8, 0.5, 0.6), (40, 200, 40)),
    ((0.2, -0.9, 0.25), (0.5, 0.5, 0.5), (40, 40, 200)),
]
NAMES = ["sofa", "table", "chair"]


def _box_surface(center, size, step, rng):
    c, s = np.asarray(center), np.asarray(size)
    pts = []
    for ax in range(3):
        for sign in (-1, 1):
            if ax == 2 and sign == -1:
                continue  # bottom face rests on the floor
            o = [i for i in range(3) if i != ax]
            n0, n1 = max(2, int(s[o[0]] / step)), max(2, int(s[o[1]] / step))
            g0, g1 = np.meshgrid(np.linspace(-0.5, 0.5, n0), np.linspace(-0.5, 0.5, n1), indexing="ij")
            p = np.zeros((g0.size, 3))
            p[:, o[0]], p[:, o[1]], p[:, ax] = g0.ravel() * s[o[0]], g1.ravel() * s[o[1]], sign * 0.5 * s[ax]
            pts.append(p + c)
    p = np.concatenate(pts)
    return p + rng.normal(0, step * 0.05, p.shape)


def look_at(eye, target, up=(0, 0, 1)) -> np.ndarray:
    """OpenCV world_from_camera (4,4) looking from eye at target."""
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], 1)
    T[:3, 3] = eye
    return T


def box_scene(n_cams: int = 6, size=(96, 72), step: float = 0.03, seed: int = 0):
    """-> (scene, instance (N,) int 0=floor 1..3=boxes). Cameras on a ring looking at the centre."""
    rng = np.random.default_rng(seed)
    pts, inst, cols = [], [], []
    g = np.arange(-2, 2, step)
    fx, fy = np.meshgrid(g, g)
    floor = np.stack([fx.ravel(), fy.ravel(), np.zeros(fx.size)], 1)
    pts.append(floor), inst.append(np.zeros(len(floor), int)), cols.append(np.tile([128, 128, 128], (len(floor), 1)))
    for i, (c, s, col) in enumerate(BOXES):
        p = _box_surface(c, s, step, rng)
        pts.append(p), inst.append(np.full(len(p), i + 1)), cols.append(np.tile(col, (len(p), 1)))
    P = np.concatenate(pts).astype(np.float32)
    W, H = size
    f = 0.9 * W
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], np.float32)
    ang = np.linspace(0, 2 * np.pi, n_cams, endpoint=False)
    wfc = np.stack([look_at(np.array([3.2 * np.cos(a), 3.2 * np.sin(a), 1.8]), (0, 0, 0.3)) for a in ang])
    cams = Cameras(np.repeat(K[None], n_cams, 0), wfc.astype(np.float32), np.arange(n_cams, dtype=np.float64),
                   np.arange(n_cams, dtype=np.int32), (W, H))
    scene = SemanticScene.from_points(P, np.concatenate(cols).astype(np.uint8), cameras=cams)
    return scene, np.concatenate(inst)


def render_instances(scene: SemanticScene, instance: np.ndarray, f: int, size=None) -> np.ndarray:
    """(H,W) int instance map of camera f (-1 background), from the points (z-buffer + fill)."""
    cams = scene.cameras
    W, H = size or cams.image_size
    K = cams.intrinsics[f].astype(np.float64).copy()
    K[0] *= W / cams.image_size[0]
    K[1] *= H / cams.image_size[1]
    idx, u, v, z = project(scene.points, K, cams.world_from_camera[f], (W, H))
    _, near = zbuffer(u, v, z, (W, H))
    lab = np.where(near >= 0, instance[idx[np.maximum(near, 0)]], -1)
    empty = near < 0
    _, (iy, ix) = ndimage.distance_transform_edt(empty, return_indices=True)
    return lab[iy, ix]


def gt_masks(scene, instance, f, size=None, min_px=10):
    lab = render_instances(scene, instance, f, size)
    return [lab == i for i in np.unique(lab) if i >= 0 and (lab == i).sum() >= min_px]


class StubText:
    """Stand-in text encoder: one dimension per known word (unknown words: a hashed direction)."""

    space_id = "stub"
    dim = 8
    SYN = {"couch": "sofa", "desk": "table", "seat": "chair", "ground": "floor"}  # noqa: RUF012
    WORDS = ("floor", "sofa", "table", "chair", "lamp", "bed")

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            w = t.split()[-1].lower()
            w = self.SYN.get(w, w)
            if w in self.WORDS:
                out[i, self.WORDS.index(w)] = 1.0
            else:
                out[i, 6 + (sum(map(ord, w)) % 2)] = 1.0
        return out


def instance_descriptors(masks, labels_map, dim=8, noise=0.1, rng=None):
    """Descriptor per mask: one-hot of the majority instance + noise (instance 0 = floor)."""
    rng = rng or np.random.default_rng(0)
    out = []
    for m in masks:
        ids, cnt = np.unique(labels_map[m], return_counts=True)
        d = np.zeros(dim, np.float32)
        d[int(ids[np.argmax(cnt)])] = 1.0  # floor -> 0, sofa -> 1, table -> 2, chair -> 3 (StubText.WORDS)
        d += rng.normal(0, noise, dim).astype(np.float32)
        out.append(d / np.linalg.norm(d))
    return np.array(out, np.float32).reshape(len(masks), dim)
