"""The focal length from a room's vanishing points: synthetic Manhattan rooms drawn with known focal
lengths and poses; keyframes that give nothing or disagree give no estimate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.geometry.sfm.vanishing_focal import image_focal, vanishing_focal


def room_edges(f: float, yaw: float, pitch: float, w: int = 320, h: int = 240) -> np.ndarray:
    """(h,w,3) uint8: the floor's and ceiling's grid lines and the front and back walls' vertical lines of a
    6 x 3 x 6 m box seen from inside with focal length f px (principal point at the centre), the camera
    turned by yaw and pitch degrees."""
    img = np.full((h, w, 3), 200, np.uint8)
    R = Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix()  # camera from world (y down)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    centre = np.array([0.3, -0.2, 0.0])
    segments = []
    for a in np.linspace(-3, 3, 7):
        for y in (-1.5, 1.5):
            segments += [((a, y, -3), (a, y, 3)), ((-3, y, a), (3, y, a))]
        for z in (-3, 3):
            segments.append(((a, -1.5, z), (a, 1.5, z)))
    for p, q in segments:
        cam = (np.array([p, q], float) - centre) @ R.T
        t = np.linspace(0, 1, 50)[:, None]
        pts = cam[0] + t * (cam[1] - cam[0])
        pts = pts[pts[:, 2] > 0.2]  # the part in front of the camera
        if len(pts) < 2:
            continue
        uv = (pts[[0, -1]] / pts[[0, -1], 2:]) @ K.T
        cv2.line(img, tuple(np.round(uv[0, :2]).astype(int)), tuple(np.round(uv[1, :2]).astype(int)),
                 (40, 40, 40), 2, cv2.LINE_AA)
    return img


@pytest.mark.parametrize("f", [180.0, 231.0, 300.0])
@pytest.mark.parametrize("yaw,pitch", [(25, -12), (40, 10), (-30, -20)])
def test_one_view_of_a_room_gives_its_focal_length(f, yaw, pitch):
    got = image_focal(room_edges(f, yaw, pitch))
    assert got is not None and abs(got / f - 1) < 0.03, got


def test_the_video_estimate_is_the_keyframes_median_and_says_how_it_was_made():
    views = [room_edges(231.0, yaw, pitch) for yaw, pitch in ((25, -12), (40, 10), (-30, -20), (15, 15), (-45, 8))]
    f, record = vanishing_focal(views)
    assert f is not None and abs(f / 231.0 - 1) < 0.02
    assert record["estimates"] == 5 and record["focal"] == pytest.approx(f, abs=0.01) and record["spread"] < 0.03


def test_blank_or_disagreeing_keyframes_give_no_focal_length():
    blank = [np.full((240, 320, 3), 128, np.uint8)] * 6
    f, record = vanishing_focal(blank)
    assert f is None and "0 of 6 keyframes" in record["reason"]
    mixed = [room_edges(f, 25, -12) for f in (150.0, 200.0, 250.0, 300.0, 350.0, 400.0)]
    f, record = vanishing_focal(mixed)
    assert f is None and "disagree" in record["reason"]
