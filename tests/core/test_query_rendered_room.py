"""Text queries on a room rendered from the test furniture library, through the default pipeline (own geometry,
default semantics): what an artist gets typing "table", "floor" or "couch" in the sidebar.

The room is never used to choose a setting. Its reconstruction is aligned to the render's ground truth as the
benchmark aligns it (Sim(3) from the keyframe poses, then ICP); a reconstructed point belongs to a class when its
nearest ground-truth point does. A query selects what the add-on selects by default: every segment scoring at or
above the scene's recorded threshold (``default_threshold``).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from core.bench import metrics as BM
from core.jobs import JobContext
from core.pipeline import ReconstructSettings, reconstruct_video
from core.scenegen.room_config import RoomConfig
from core.scenegen.suite import TEST_LIBRARIES, cached_scene, load_scene
from core.scenegen.taxonomy import CLASSES
from core.semantics.query import default_threshold, query, select_points
from core.semantics.text_encoder import default_encoder

#: a living room with a sofa, two tables, a tv on its stand, a lamp, a plant and a radiator; 150 frames of a walk
#: at 15 fps, 320x240 (about 3 minutes to render on 2 cores, cached by content hash)
QUERY_ROOM = RoomConfig(
    name="query_room", seed=602, room_type="living", room_width=4.6, room_depth=3.8, num_objects=8, lighting="day",
    trajectory="walk_loop", width=320, height=240, frames=150, fps=15.0, samples=2, fast_denoise=True,
    libraries=TEST_LIBRARIES,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def room():
    """(scene, class id of each reconstructed point (N,), the text encoder)."""
    data = load_scene(cached_scene(QUERY_ROOM))
    scene = reconstruct_video(data["video"], JobContext(), ReconstructSettings())
    gt = data["gt_cloud"]
    fi = scene.cameras.frame_index
    pts = scene.points.astype(np.float64)
    sim = BM.align_cloud(pts, gt["points"].astype(np.float64), np.asarray(scene.cameras.world_from_camera, np.float64),
                         data["cameras"]["world_from_camera"][fi])
    _, nearest = cKDTree(gt["points"]).query(BM.apply_sim3(pts, *sim))
    return scene, gt["semantic"][nearest].astype(np.int64), default_encoder()


def precision_recall(scene, cls: np.ndarray, text: str, name: str, enc) -> tuple[float, float]:
    sel = select_points(scene, query(scene, text, enc), margin=np.inf, min_score=default_threshold(scene))
    truth = cls == CLASSES.index(name)
    assert truth.sum() >= 200, f"the reconstruction holds only {truth.sum()} {name} points"
    tp = float((sel & truth).sum())
    return tp / max(int(sel.sum()), 1), tp / float(truth.sum())


# Measured 2026-12-07 (three runs of the pipeline): "floor" precision 0.34-0.38 / recall 0.61-0.73, "table" 0.97 /
# 0.13; "couch" and "sofa" rank sofa segments first. The room's walls and floor are plain: its dense cloud
# lies a median 26 cm from the true surfaces after the benchmark's alignment (Acc 29-32 cm with or without the true
# intrinsics; dev_walk_0, textured, 4.1-4.6 cm), so geometry and descriptors share the misses. 2026-12-08, with the
# room's box held against the floor (one run): "floor" precision 0.58, "table" 0.66 / 0.06.
OPEN = "the open targets of the geometry and semantics issues: plain-walled room, unseen furniture"


@pytest.mark.xfail(reason=OPEN, strict=False)
def test_floor_selects_the_floor(room):
    p, r = precision_recall(*room[:2], "floor", "floor", room[2])
    assert p >= 0.8 and r >= 0.8, (p, r)


@pytest.mark.xfail(reason=OPEN, strict=False)
def test_table_selects_the_tables(room):
    p, r = precision_recall(*room[:2], "table", "table", room[2])
    assert p >= 0.5 and r >= 0.5, (p, r)


def test_couch_ranks_the_segments_like_sofa(room):
    """Both words put the sofa's segments first. The sofa comes in several segments (7 in one run), whose order among
    themselves moves with the reconstruction from run to run (the mapping is not repeatable to the point), so the
    check is on the segments ranked first, not on one of them."""
    scene, cls, enc = room
    for word in ("sofa", "couch"):
        first = query(scene, word, enc).order[:3]
        share = [(cls[scene.segment_id == s] == CLASSES.index("sofa")).mean() for s in first]
        assert min(share) >= 0.5, (word, first, share)
