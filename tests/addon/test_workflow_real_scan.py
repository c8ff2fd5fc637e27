"""Every scan operator on a real reconstruction, with the shipped models and the real query worker.

The scene is ``tests/assets/scan_living.ov3r.npz``: the `sfm` engine + the shipped compact image
encoder on the rendered benchmark room ``test_living`` (test library only), made by
``bench/make_scan_fixture.py``; ``scan_living_gt.npz`` beside it holds the Sim(3) from the scan
to the renderer's world (floor at z=0, +Z up), each scan point's GT class and the room size.
Queries go through the real query worker process (all-MiniLM-L6-v2), as in Blender.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import REPO, bpy
from ov3r.core.bench.metrics import umeyama_sim3
from ov3r.core.export import read_labels_json, read_ply_vertices
from ov3r.core.scene import load_scene
from ov3r.core.semantics.query import label_scene, query
from ov3r.core.semantics.text_encoder import default_encoder
from ov3r.ov3r_addon import blend_storage, point_attrs, proxies, query_client, scan_query

ASSETS = REPO / "tests" / "assets"


@pytest.fixture(scope="module")
def scan_files(tmp_path_factory):
    """The fixture copied to a path with spaces and non-ASCII characters."""
    d = tmp_path_factory.mktemp("scan") / "salon réel"
    d.mkdir()
    path = d / "scan living.ov3r.npz"
    shutil.copy(ASSETS / "scan_living.ov3r.npz", path)
    with np.load(ASSETS / "scan_living_gt.npz") as z:
        gt = {k: z[k] for k in z.files}
    return path, gt


@pytest.fixture(scope="module")
def text():
    """The same text encoder as the query worker, in this process: the reference answers."""
    return default_encoder()


@pytest.fixture(autouse=True)
def real_worker(registered_addon):
    query_client.set_encoder_override(None)  # the real worker process, default (offline) encoder
    yield


@pytest.fixture(scope="module", autouse=True)
def stop_worker():
    yield
    query_client.shutdown()


def _import(path, align=True):
    assert bpy.ops.ov3r.import_scene(filepath=str(path), align=align) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj is not None and blend_storage.info(obj) is not None
    return obj


def _blender_from_scan(obj, scan):
    """4x4 similarity taking the file's coordinates to the object's current point positions."""
    s, R, t = umeyama_sim3(scan.points.astype(np.float64), point_attrs.read(obj.data, "position").astype(np.float64))
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = s * R, t
    return m


def _gt_from_blender(obj, scan, gt):
    return gt["gt_from_scan"] @ np.linalg.inv(_blender_from_scan(obj, scan))


def test_import_puts_the_floor_on_z0(scan_files):
    path, gt = scan_files
    scan = load_scene(path)
    obj = _import(path)
    g_from_b = _gt_from_blender(obj, scan, gt)
    b_from_g = np.linalg.inv(g_from_b)
    # The true up (+Z of the room) seen in Blender's frame.
    up = b_from_g[:3, :3] @ np.array([0.0, 0.0, 1.0])
    tilt = np.degrees(np.arccos(up[2] / np.linalg.norm(up)))
    assert tilt < 2.0
    # The true floor (z=0) under the room's centre lies at Blender's Z=0 (within 1% of the room's
    # size; at the corners the <2 degree tilt adds up to ~tan(2) * half the diagonal).
    w, d, h = gt["room_size"]
    z = (b_from_g @ np.array([w / 2, d / 2, 0.0, 1.0]))[2]
    scale = np.linalg.norm(b_from_g[:3, 0])
    assert abs(z) < 0.01 * scale * max(w, d)


def test_set_scale_from_one_known_distance(scan_files):
    path, gt = scan_files
    scan = load_scene(path)
    obj = _import(path)
    pos = point_attrs.read(obj.data, "position").astype(np.float64)
    # Two far-apart scan points with their true distance (what an artist measures with a tape).
    labelled = np.flatnonzero(gt["point_class"] > 0)
    g = (gt["gt_from_scan"][:3, :3] @ scan.points[labelled].T).T + gt["gt_from_scan"][:3, 3]
    i, j = labelled[np.argmin(g[:, 0] + g[:, 1])], labelled[np.argmax(g[:, 0] + g[:, 1])]
    true = float(np.linalg.norm(g[np.argmin(g[:, 0] + g[:, 1])] - g[np.argmax(g[:, 0] + g[:, 1])]))
    assert true > 2.0 and np.linalg.norm(pos[i] - pos[j]) > 0
    sel = np.zeros(len(pos), bool)
    sel[[i, j]] = True
    point_attrs.set_selection(obj.data, sel)
    bpy.ops.object.mode_set(mode="EDIT")
    assert bpy.ops.ov3r.set_scale(source="VERTICES", distance=true) == {"FINISHED"}
    bpy.ops.object.mode_set(mode="OBJECT")
    # The room's true box, seen in Blender's (now metric) frame: its edges have their real lengths.
    b_from_g = np.linalg.inv(_gt_from_blender(obj, scan, gt))
    w, d, h = gt["room_size"]
    o, x, y, zc = (b_from_g @ np.array([[0, 0, 0, 1], [w, 0, 0, 1], [0, d, 0, 1], [0, 0, h, 1]], float).T).T[:, :3]
    dims = [np.linalg.norm(x - o), np.linalg.norm(y - o), np.linalg.norm(zc - o)]
    assert dims == pytest.approx([w, d, h], rel=0.03)
    # The recovered camera path moved with it: heights above the floor as rendered.
    cams = blend_storage.read_cameras(obj).world_from_camera
    assert np.allclose(cams[:, 2, 3], gt["gt_centres"][:, 2], atol=0.03 * h)


def test_select_and_threshold_match_the_core_query(scan_files, text):
    path, gt = scan_files
    scan = load_scene(path)
    obj = _import(path, align=False)
    ref = query(scan, "chair", text)
    assert bpy.ops.ov3r.query_select(text="chair", threshold=0.0, wait=True) == {"FINISHED"}
    score = point_attrs.read(obj.data, "query_score")
    has = scan.segment_id >= 0
    assert np.allclose(score[has], ref.point[has], atol=1e-4)
    sel = point_attrs.selection(obj.data)
    assert np.array_equal(sel, has & (ref.point >= 0.0))
    # The slider: counts at a higher threshold, no new query.
    cut = float(np.quantile(ref.segment, 0.9))
    obj.ov3r_scan.threshold = cut
    n_pts, n_seg = scan_query.match_counts(obj, cut)
    assert n_seg == int((ref.segment >= cut).sum()) and n_seg >= 1
    assert n_pts == int((has & (ref.point >= cut)).sum())
    # Better than chance on this real scene: the top segments hold mostly chair points.
    chair = list(gt["classes"]).index("chair")
    picked = point_attrs.selection(obj.data)
    assert picked.sum() == n_pts
    precision = float((gt["point_class"][picked] == chair).mean())
    assert precision > 2 * float((gt["point_class"] == chair).mean())


def test_label_all_isolate_and_proxies(scan_files, text):
    path, _gt = scan_files
    scan = load_scene(path)
    obj = _import(path, align=False)
    vocab = ["sofa", "chair", "table", "bookcase", "wardrobe", "plant", "lamp", "speaker", "window", "wall", "floor"]
    obj.ov3r_scan.vocabulary = ", ".join(vocab)
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    ref = label_scene(scan, vocab, threshold=obj.ov3r_scan.label_threshold, encoder=text)
    ref_ids = np.array([vocab.index(lbl) if lbl in vocab else -1 for lbl in ref.segments.label] + [-1])
    label_id = point_attrs.read(obj.data, "label_id")
    assert np.array_equal(label_id, ref_ids[scan.segment_id])
    legend = {item.name: item.points for item in obj.ov3r_scan.legend}
    assert list(legend) == vocab and sum(legend.values()) == int((label_id >= 0).sum())
    # Isolate the chair query's points into their own object.
    assert bpy.ops.ov3r.query_select(text="chair", threshold=0.0, wait=True) == {"FINISHED"}
    mask = point_attrs.selection(obj.data).copy()
    assert bpy.ops.ov3r.isolate() == {"FINISHED"}
    new = bpy.context.view_layer.objects.active
    assert new is not obj and len(new.data.vertices) == int(mask.sum())
    assert np.array_equal(point_attrs.read(new.data, "position"), point_attrs.read(obj.data, "position")[mask])
    assert np.array_equal(point_attrs.read(new.data, "label_id"), label_id[mask])
    # Blocking proxies, one per label present, named by it, sized like the label's segments.
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.ov3r.make_proxies(mode="LABEL", min_points=1) == {"FINISHED"}
    coll = proxies.proxy_collection(obj)
    seg = blend_storage.read_segments(obj)
    groups: dict[str, list[int]] = {}
    for k in np.unique(scan.segment_id[scan.segment_id >= 0]):
        groups.setdefault(seg.label[k] or "unlabeled", []).append(int(k))
    assert sorted(o.name for o in coll.objects) == sorted(groups)
    assert set(groups) - {"unlabeled"} == {vocab[i] for i in np.unique(label_id[label_id >= 0])}
    pos = point_attrs.read(obj.data, "position")
    for name, segs in groups.items():
        inside = np.isin(scan.segment_id, segs)
        box = np.array(coll.objects[name].matrix_world)
        local = (np.linalg.inv(box) @ np.c_[pos[inside], np.ones(inside.sum())].T)[:3]
        # The label's box (a unit cube scaled and turned) holds its segments' points.
        assert (np.abs(local) <= 0.51).all(0).mean() > 0.95, name


def test_exports_reimport_with_attributes(scan_files, tmp_path):
    path, _gt = scan_files
    obj = _import(path)
    obj.ov3r_scan.vocabulary = "sofa, chair, table, bookcase, wardrobe, window, wall, floor"
    assert bpy.ops.ov3r.label_all(wait=True) == {"FINISHED"}
    assert bpy.ops.ov3r.query_select(text="sofa", threshold=0.0, wait=True) == {"FINISHED"}
    ref = {k: point_attrs.read(obj.data, k) for k in ("position", "segment_id", "label_id", "query_score")}
    ply = tmp_path / "scan exporté.ply"
    assert bpy.ops.ov3r.export_ply(filepath=str(ply), per_label=True) == {"FINISHED"}
    v = read_ply_vertices(ply)
    assert np.array_equal(np.stack([v["x"], v["y"], v["z"]], 1), ref["position"])
    for name, key in (("segment_id", "segment_id"), ("label_id", "label_id"), ("score", "query_score")):
        assert np.array_equal(v[name], ref[key]), name
    doc = read_labels_json(tmp_path / "scan exporté.labels.json")
    counts = np.bincount(ref["label_id"][ref["label_id"] >= 0], minlength=len(doc["labels"]))
    assert [lab["points"] for lab in doc["labels"]] == counts.tolist()
    for i, lab in enumerate(doc["labels"]):
        part = tmp_path / f"scan exporté_{lab['name']}.ply"
        assert (len(read_ply_vertices(part)) == counts[i]) if counts[i] else not part.exists()
    # One object per label: every labelled point in exactly one of them, with its attributes.
    before = {o.name for o in bpy.data.objects}
    assert bpy.ops.ov3r.split_labels() == {"FINISHED"}
    parts = [o for o in bpy.data.objects if o.name not in before and "ov3r_label" in o]
    assert sorted(o["ov3r_label"] for o in parts) == sorted(lab["name"] for i, lab in enumerate(doc["labels"])
                                                             if counts[i])
    for o in parts:
        ids = point_attrs.read(o.data, "label_id")
        assert len(ids) == counts[ids[0]] and (ids == ids[0]).all()
    bpy.context.view_layer.objects.active = obj
    glb = tmp_path / "scan exporté.glb"
    assert bpy.ops.ov3r.export_gltf(filepath=str(glb), format="GLB") == {"FINISHED"}
    before = {o.name for o in bpy.data.objects}
    bpy.ops.import_scene.gltf(filepath=str(glb))
    new = [o for o in bpy.data.objects if o.name not in before and o.type == "MESH"]
    assert len(new) == 1 and len(new[0].data.vertices) == len(ref["position"])
    got = point_attrs.read(new[0].data, "_LABEL_ID")
    assert np.array_equal(np.sort(got.astype(np.int64)), np.sort(ref["label_id"].astype(np.int64)))


def test_save_reopen_then_query_again(scan_files, tmp_path, text):
    path, _gt = scan_files
    obj = _import(path)
    name = obj.name
    assert bpy.ops.ov3r.query_select(text="sofa", threshold=0.0, wait=True) == {"FINISHED"}
    first = point_attrs.read(obj.data, "query_score").copy()
    blend = tmp_path / "projet réel.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scan_query.forget_cache()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    obj = bpy.data.objects[name]
    bpy.context.view_layer.objects.active = obj
    assert np.array_equal(point_attrs.read(obj.data, "query_score"), first)
    assert bpy.ops.ov3r.query_select(text="couch", threshold=0.0, wait=True) == {"FINISHED"}
    again = point_attrs.read(obj.data, "query_score")
    ref = query(load_scene(path), "couch", text)
    has = load_scene(path).segment_id >= 0
    assert np.allclose(again[has], ref.point[has], atol=1e-4)
