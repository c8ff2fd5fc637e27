"""Pictures for docs/: a labelled room scan coloured by label, by a query's score, and its
blocking proxies, rendered headless in the bpy module.

    nice .venv/bin/python bench/render_docs.py [--out docs/img] [--scan SCAN.ov3r.npz | --gt] [--stand-in]

By default the scan is a real reconstruction: ``tests/assets/scan_living.ov3r.npz`` (the
`sfm` engine + the shipped compact encoder on the rendered test room ``test_living``, made by
``bench/make_scan_fixture.py``); its ``_gt.npz`` gives one true distance for the scale. With
``--gt`` it is the room's ground truth instead (``bench/gt_scene.py``: GT cloud, cameras, one
segment per GT instance whose descriptor is the text embedding of its class, i.e. a perfect
encoder), moved by an arbitrary similarity like a reconstruction. Either way it goes through
the add-on's own operators: import with Align to Floor, Set Real Scale, Label All (the real
offline text encoder in the query worker, or ``--stand-in``), Select "sofa", Blocking Proxies.
Points render with Cycles (their material shows the display colour), proxies with
Workbench (object colour = label colour). Files: ``scan_labels.png``, ``scan_query_sofa.png``,
``proxies.png`` (``gt_`` prefixed with ``--gt``).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _import_ov3r():
    spec = importlib.util.spec_from_file_location("ov3r", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ov3r"] = mod
    spec.loader.exec_module(mod)
    return mod


def _camera(bpy, lo: np.ndarray, hi: np.ndarray):
    """Above a corner of the room, looking down at its centre."""
    from mathutils import Vector

    c = (lo + hi) / 2
    size = hi - lo
    pos = Vector((c[0] - 0.55 * size[0], c[1] - 0.85 * size[1], hi[2] + 1.6 * size[2]))
    cam = bpy.data.objects.new("docs camera", bpy.data.cameras.new("docs camera"))
    bpy.context.scene.collection.objects.link(cam)
    cam.location = pos
    cam.rotation_euler = (Vector((c[0], c[1], lo[2] + 0.2 * size[2])) - pos).to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = 22
    bpy.context.scene.camera = cam
    return cam


def _render(bpy, path: Path, engine: str, size=(800, 600)) -> None:
    scene = bpy.context.scene
    scene.render.engine = engine
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    scene.render.image_settings.compression = 100
    scene.view_settings.view_transform = "Standard"
    if scene.world is None:
        scene.world = bpy.data.worlds.new("docs world")
    scene.world.color = (0.04, 0.04, 0.05)
    if engine == "CYCLES":
        scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 8, False
    else:
        shading = scene.display.shading
        shading.light, shading.color_type = "STUDIO", "OBJECT"
        shading.show_shadows, shading.show_cavity = True, False
        scene.display.render_aa = "8"
    scene.render.filepath = str(path.resolve())
    bpy.ops.render.render(write_still=True)
    print(f"wrote {path}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=str(ROOT / "docs" / "img"))
    p.add_argument("--stand-in", action="store_true", help="hash stand-in encoder instead of all-MiniLM-L6-v2")
    p.add_argument("--scan", default=str(ROOT / "tests" / "assets" / "scan_living.ov3r.npz"))
    p.add_argument("--gt", action="store_true", help="the room's ground truth as the scan (a perfect encoder)")
    a = p.parse_args()
    import bpy

    ov3r = _import_ov3r()
    from gt_scene import gt_semantic_scene
    from ov3r.core.scenegen.suite import cached_scene, test_suite
    from ov3r.core.query_worker import HashEncoder
    from ov3r.core.scene import load_scene, save_scene
    from ov3r.core.scene.align import transform_scene
    from ov3r.core.semantics.text_encoder import TextEncoder
    from ov3r.ov3r_addon import isolate, point_attrs, point_display, query_client, scan_labels

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = HashEncoder() if a.stand_in else TextEncoder()
    prefix = "gt_" if a.gt else ""
    if a.gt:
        scene = gt_semantic_scene(cached_scene(test_suite(frames=4)[0]), encoder=encoder)
        vocab = sorted(set(scene.metadata["bench"]["gt_labels"]))
        t = np.eye(4)
        ang = math.radians(33)
        t[:3, :3] = 0.6 * np.array([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]])
        path = save_scene(transform_scene(scene, t), Path(tempfile.mkdtemp()) / "living room.ov3r.npz")
    else:
        path = Path(a.scan)
        vocab = None  # the preferences' default vocabulary, as an artist would start

    bpy.ops.wm.read_factory_settings(use_empty=True)
    ov3r.register()
    if a.stand_in:
        query_client.set_encoder_override(encoder)
    bpy.ops.ov3r.import_scene(filepath=str(path), align=True)
    obj = bpy.context.view_layer.objects.active
    pos = point_attrs.read(obj.data, "position")
    gt_file = path.with_name(path.name.replace(".ov3r.npz", "_gt.npz"))
    if not a.gt and gt_file.is_file():
        # Real size from one known distance: two far-apart points and their true distance.
        with np.load(gt_file) as z:
            g_from_s = z["gt_from_scan"]
        raw = load_scene(path).points.astype(np.float64)
        g = raw @ g_from_s[:3, :3].T + g_from_s[:3, 3]
        i, j = int(np.argmin(g[:, 0] + g[:, 1])), int(np.argmax(g[:, 0] + g[:, 1]))
        bpy.context.scene.cursor.location = pos[i].tolist()
        bpy.ops.ov3r.scale_point_a()
        bpy.context.scene.cursor.location = pos[j].tolist()
        bpy.ops.ov3r.set_scale(source="CURSOR", distance=float(np.linalg.norm(g[i] - g[j])))
    else:
        # Real size from one known distance: the room is 2.6 m high (floor to ceiling).
        h = float(np.percentile(pos[:, 2], 99.8) - np.percentile(pos[:, 2], 0.2))
        bpy.context.scene.cursor.location = (0, 0, 0)
        bpy.ops.ov3r.scale_point_a()
        bpy.context.scene.cursor.location = (0, 0, h)
        bpy.ops.ov3r.set_scale(source="CURSOR", distance=2.6)
    if vocab:
        obj.ov3r_scan.vocabulary = ", ".join(vocab)
    else:
        obj.ov3r_scan.label_threshold = -1.0  # closed vocabulary, as the benchmark: every segment its best label
    bpy.ops.ov3r.label_all(wait=True)
    # A view copy without the ceiling (else the picture shows the ceiling): the floor is at Z=0
    # after Align to Floor, so cut by height rather than trust the labels.
    z = point_attrs.read(obj.data, "position")[:, 2]
    keep = z < 0.8 * float(np.percentile(z, 99.5))
    view = isolate.subset_object(obj, keep, "docs view")
    obj.hide_render = True
    point_display.set_point_size(view, 0.035)
    pos = point_attrs.read(view.data, "position")
    lo, hi = np.percentile(pos, 1, 0), np.percentile(pos, 99, 0)
    _camera(bpy, lo, hi)
    point_display.set_display(view, "LABEL")
    _render(bpy, out / f"{prefix}scan_labels.png", "CYCLES")

    bpy.context.view_layer.objects.active = view
    bpy.ops.ov3r.query_select(text="sofa", threshold=(0.8 if a.gt else 0.0) if not a.stand_in else 0.95, wait=True)
    _render(bpy, out / f"{prefix}scan_query_sofa.png", "CYCLES")

    bpy.context.view_layer.objects.active = obj
    bpy.ops.ov3r.make_proxies(mode="SEGMENT", min_points=20)
    coll = bpy.data.collections[f"Ov3R proxies {obj.name}"]
    for p_obj in coll.objects:
        d = sorted(p_obj.dimensions)
        # Blocking is about furniture: hide room-sized boxes (walls, floor, ceiling pieces).
        if p_obj["ov3r_proxy"]["label"] in ("ceiling", "wall", "floor") or d[2] > 2.5 or d[1] * d[2] > 6.0:
            p_obj.hide_render = True
    view.hide_render = True
    _render(bpy, out / f"{prefix}proxies.png", "BLENDER_WORKBENCH")
    query_client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
