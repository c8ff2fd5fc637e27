"""Which keyframe pairs SIFT matching compares (core.geometry.sfm.matching_pairs), and that COLMAP compares
exactly those."""

from __future__ import annotations

import pytest
from ov3r.core.geometry.sfm.matching_pairs import sequential_pairs, write_pairs
from video_fixtures import pan_frames


def test_near_neighbours_and_far_links_together():
    assert sequential_pairs(4, 1, False) == [(0, 1), (1, 2), (2, 3)]
    near = sequential_pairs(10, 3, False)
    assert {j - i for i, j in near} == {1, 2, 3} and len(near) == 9 + 8 + 7
    both = sequential_pairs(40, 3, True)
    gaps = {j - i for i, j in both}
    assert gaps == {1, 2, 3, 4, 8, 16, 32}  # the near ones and the powers of two, not one or the other
    assert (0, 32) in both and (7, 39) in both and (0, 5) not in both
    assert len(both) == len(set(both)) and both == sorted(both)
    with pytest.raises(ValueError):
        sequential_pairs(5, 0, True)


def test_colmap_matches_exactly_the_listed_pairs(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    import cv2

    n = 7
    names = [f"{i:06d}.png" for i in range(n)]
    (tmp_path / "images").mkdir()
    for name, f in zip(names, pan_frames(n, 6.0)):
        cv2.imwrite(str(tmp_path / "images" / name), f[..., ::-1])
    db_path = tmp_path / "database.db"
    pycolmap.extract_features(db_path, tmp_path / "images", image_names=names, device=pycolmap.Device.cpu)
    pairs = sequential_pairs(n, 2, True)
    options = pycolmap.ImportedPairingOptions()
    options.match_list_path = write_pairs(tmp_path / "pairs.txt", [(names[i], names[j]) for i, j in pairs])
    pycolmap.match_image_pairs(db_path, pairing_options=options, device=pycolmap.Device.cpu)
    db = pycolmap.Database.open(str(db_path))
    index = {im.image_id: names.index(im.name) for im in db.read_all_images()}
    matched = sorted(tuple(sorted(index[k] for k in pycolmap.pair_id_to_image_pair(pid)))
                     for pid in db.read_all_matches()[0])
    db.close()
    assert matched == pairs
