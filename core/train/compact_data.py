"""Training / evaluation images for the compact image encoder, rendered with Blender.

Each furniture model of the Sweet Home 3D catalogs is imported (OBJ/MTL + textures),
scaled to its catalog size and rendered from random views (azimuth, elevation,
distance, focal length) with Workbench (textures, random studio light, shadows,
cavity) on a transparent film: each view is an RGBA image whose alpha is the object
mask. Backgrounds, occluders, crops and colour changes are added later, at training
time (:mod:`core.train.compact_aug`).

Splits (:mod:`core.scenegen.splits`): ``"train"`` = every model of the training libraries
(never a model of the test library: asserted by library and by id); ``"test"`` = the
test library's models that have a taxonomy class, never used in training.

Cached as ``~/.cache/ov3r/compact_data/<hash>/data.npz`` (``$OV3R_CACHE`` overrides
``~/.cache/ov3r``) with arrays:

- ``rgba (N, R, R, 4) uint8``  the views;
- ``obj (N,) int32``           index into the object table;
- ``view (N, 3) float32``      azimuth, elevation (radians), distance / bounding radius;
- ``objects``                  JSON string: list of {id, name, category, library, class, license}.

bpy is imported only inside :func:`_render_chunk`, which runs in a subprocess
(``python -m core.train.compact_data _chunk ...``) so the caller's Blender state is untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..scenegen.catalog import CatalogEntry, extract_model, load_catalog
from ..scenegen.splits import TEST_LIBRARIES, test_model_ids, training_libraries
from ..scenegen.taxonomy import classify_entry
from ..cache import cache_dir

__all__ = ["DataConfig", "select_entries", "assert_training_split", "dataset_dir", "build_dataset",
           "load_dataset", "CompactData"]

DATA_VERSION = 1


@dataclass(frozen=True)
class DataConfig:
    """What to render. ``views_labelled`` views per model with a taxonomy class,
    ``views_unlabelled`` per other model (train split only; their catalog names still
    teach the text space)."""

    split: str = "train"
    views_labelled: int = 40
    views_unlabelled: int = 8
    res: int = 128
    seed: int = 0

    def key(self, entries: Sequence[CatalogEntry]) -> str:
        h = hashlib.sha256(json.dumps({"v": DATA_VERSION, "cfg": asdict(self),
                                       "ids": [e.id for e in entries]}, sort_keys=True).encode())
        return h.hexdigest()[:16]


def _cache_root() -> Path:
    return cache_dir("compact_data")


def assert_training_split(entries: Sequence[CatalogEntry]) -> None:
    """Raise ``AssertionError`` if any entry belongs to the test library (by library or id)."""
    bad_lib = [e.id for e in entries if e.library in TEST_LIBRARIES]
    test_ids = set(test_model_ids())
    bad_id = [e.id for e in entries if e.id in test_ids]
    if bad_lib or bad_id:
        raise AssertionError(f"training data contains test-library models: {sorted(set(bad_lib + bad_id))[:5]}")


def select_entries(split: str) -> List[CatalogEntry]:
    """Models of a split: ``"train"`` (all models of the training libraries), ``"test"``
    (test-library models with a taxonomy class) or ``"validation"`` (Sweet Home 3D's default
    catalog with a taxonomy class, ``core.scenegen.validation_library``: in neither of the others)."""
    if split == "train":
        entries = load_catalog(training_libraries())
        assert_training_split(entries)
        return entries
    if split == "test":
        return [e for e in load_catalog(TEST_LIBRARIES) if classify_entry(e) is not None]
    if split == "validation":
        from ..scenegen.validation_library import VALIDATION_LIBRARY

        return [e for e in load_catalog([VALIDATION_LIBRARY]) if classify_entry(e) is not None]
    raise ValueError(f"unknown split {split!r}")


def dataset_dir(cfg: DataConfig) -> Path:
    return _cache_root() / cfg.key(select_entries(cfg.split))


# ------------------------------------------------------------------------------ rendering (bpy)

def _set_base_colors(bpy, mats) -> None:
    """Workbench 'TEXTURE' mode shows untextured materials in their viewport colour:
    copy the Principled base colour there."""
    for m in mats:
        if not m.use_nodes or m.node_tree is None:
            continue
        for n in m.node_tree.nodes:
            if n.type == "BSDF_PRINCIPLED":
                c = n.inputs["Base Color"].default_value
                m.diffuse_color = (c[0], c[1], c[2], 1.0)
                break


def _render_chunk(objects: List[Dict], out_path: Path, res: int, seed: int) -> None:
    """Render ``objects`` (dicts with ``entry`` fields and ``views``) into ``out_path`` (npz)."""
    import bpy
    from mathutils import Vector

    from ..scenegen.room_render import _import_model, _parts_bbox, model_cache_dir

    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "BLENDER_WORKBENCH"
    sc.render.film_transparent = True
    sc.render.resolution_x = sc.render.resolution_y = res
    sc.render.resolution_percentage = 100
    sc.render.image_settings.file_format = "PNG"
    sc.render.image_settings.color_mode = "RGBA"
    try:
        sc.view_settings.view_transform = "Standard"
    except TypeError:
        pass
    sh = sc.display.shading
    sh.light = "STUDIO"
    sh.color_type = "TEXTURE"
    studios = [s.name for s in bpy.context.preferences.studio_lights if s.type == "STUDIO"]
    cam_data = bpy.data.cameras.new("cam")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = 36.0
    cam = bpy.data.objects.new("cam", cam_data)
    sc.collection.objects.link(cam)
    sc.camera = cam
    tmp = Path(tempfile.mkdtemp(prefix="ov3r_compact_"))
    from PIL import Image

    rgba, obj_idx, views = [], [], []
    try:
        for k, o in enumerate(objects):
            rng = np.random.default_rng([seed, int(o["global_index"])])
            entry = CatalogEntry(**o["entry"])
            before_mats = set(bpy.data.materials)
            parts = _import_model(bpy, extract_model(entry, model_cache_dir()))
            if not parts:
                continue
            _set_base_colors(bpy, [m for m in bpy.data.materials if m not in before_mats])
            lo, hi = _parts_bbox(parts)
            ext = np.maximum(hi - lo, 1e-6)
            size = np.array(entry.size_m, float)
            S = np.diag([*(size / ext), 1.0]) if size.min() > 0 else np.diag([*(np.full(3, 1.0 / ext.max())), 1.0])
            T0 = np.eye(4)
            T0[:3, 3] = -np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
            from mathutils import Matrix

            for p in parts:
                p.matrix_world = Matrix((S @ T0 @ np.array(p.matrix_world)).tolist())
            lo, hi = _parts_bbox(parts)
            c = (lo + hi) / 2
            r = float(np.linalg.norm(hi - lo) / 2)
            cam_data.clip_start, cam_data.clip_end = r * 0.01, r * 50
            for v in range(int(o["views"])):
                az = rng.uniform(0, 2 * math.pi)
                el = math.radians(float(np.clip(rng.normal(22, 15), -5, 70)))
                lens = rng.uniform(24, 55)
                cam_data.lens = lens
                half = math.atan(18.0 / lens)
                dist = rng.uniform(0.95, 1.35)
                d = r / math.sin(half) * dist
                tgt = c + rng.normal(0, 0.08 * r, 3)
                pos = Vector((tgt[0] + d * math.cos(el) * math.cos(az), tgt[1] + d * math.cos(el) * math.sin(az),
                              tgt[2] + d * math.sin(el)))
                cam.location = pos
                cam.rotation_euler = (Vector(tuple(tgt)) - pos).to_track_quat("-Z", "Y").to_euler()
                # lighting / shading variation
                u = rng.uniform()
                sh.light = "FLAT" if u < 0.05 else "STUDIO"
                if studios:
                    sh.studio_light = studios[int(rng.integers(len(studios)))]
                sh.studiolight_rotate_z = rng.uniform(-math.pi, math.pi)
                sh.show_shadows = bool(rng.uniform() < 0.5)
                sh.shadow_intensity = rng.uniform(0.2, 0.7)
                sh.show_cavity = bool(rng.uniform() < 0.3)
                sh.color_type = "TEXTURE" if rng.uniform() < 0.9 else "MATERIAL"
                sc.render.filepath = str(tmp / "v.png")
                bpy.ops.render.render(write_still=True)
                with Image.open(tmp / "v.png") as im:
                    a = np.asarray(im.convert("RGBA")).copy()
                if (a[..., 3] > 127).sum() < 16:
                    continue
                rgba.append(a)
                obj_idx.append(int(o["global_index"]))
                views.append((az, el, dist))
            for p in parts:
                bpy.data.objects.remove(p)
            for m in [m for m in bpy.data.materials if m not in before_mats and m.users == 0]:
                bpy.data.materials.remove(m)
            for im in [im for im in bpy.data.images if im.users == 0]:
                bpy.data.images.remove(im)
            for me in [me for me in bpy.data.meshes if me.users == 0]:
                bpy.data.meshes.remove(me)
            print(f"PROGRESS {k + 1} {len(objects)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    np.savez(out_path, rgba=np.stack(rgba) if rgba else np.zeros((0, res, res, 4), np.uint8),
             obj=np.asarray(obj_idx, np.int32), view=np.asarray(views, np.float32).reshape(-1, 3))


def _entry_dict(e: CatalogEntry) -> Dict:
    d = asdict(e)
    d["tags"] = list(d["tags"])
    if d["model_rotation"] is not None:
        d["model_rotation"] = list(d["model_rotation"])
    return d


def build_dataset(cfg: DataConfig, workers: int = 2, python: Optional[str] = None, nice: int = 10,
                  log=print) -> Path:
    """Render (or reuse from the cache) the split of ``cfg``; returns the ``data.npz`` path."""
    entries = select_entries(cfg.split)
    if cfg.split == "train":
        assert_training_split(entries)
    out_dir = _cache_root() / cfg.key(entries)
    data = out_dir / "data.npz"
    if data.exists():
        return data
    out_dir.mkdir(parents=True, exist_ok=True)
    objects = []
    table = []
    for i, e in enumerate(entries):
        cls = classify_entry(e)
        nv = cfg.views_labelled if cls is not None else (cfg.views_unlabelled if cfg.split == "train" else 0)
        table.append({"id": e.id, "name": e.name, "category": e.category, "library": e.library, "class": cls,
                      "license": e.license, "creator": e.creator})
        if nv > 0:
            objects.append({"entry": _entry_dict(e), "views": nv, "global_index": i})
    # pre-extract in this process (the chunks then only read files)
    from ..scenegen.room_render import model_cache_dir

    for o in objects:
        extract_model(CatalogEntry(**{**o["entry"], "tags": tuple(o["entry"]["tags"]),
                                      "model_rotation": None if o["entry"]["model_rotation"] is None
                                      else tuple(o["entry"]["model_rotation"])}), model_cache_dir())
    workers = max(1, int(workers))
    chunks = [objects[w::workers] for w in range(workers)]
    root = Path(__file__).resolve().parents[2]
    mod = f"{Path(__file__).resolve().parents[1].name}.train.compact_data"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = []
    t0 = time.time()
    for w, ch in enumerate(chunks):
        spec = out_dir / f"chunk{w}.json"
        spec.write_text(json.dumps({"objects": ch, "res": cfg.res, "seed": cfg.seed}))
        cmd = ([] if not nice else ["nice", "-n", str(nice)]) + [python or sys.executable, "-m", mod, "_chunk",
                                                                 str(spec), str(out_dir / f"chunk{w}.npz")]
        procs.append(subprocess.Popen(cmd, env=env, cwd=str(root), stdout=open(out_dir / f"chunk{w}.log", "w"),
                                      stderr=subprocess.STDOUT))
    for w, p in enumerate(procs):
        if p.wait() != 0:
            raise RuntimeError(f"render chunk {w} failed; see {out_dir / f'chunk{w}.log'}")
    parts = [np.load(out_dir / f"chunk{w}.npz") for w in range(workers)]
    obj = np.concatenate([p["obj"] for p in parts])
    order = np.argsort(obj, kind="stable")
    rgba = np.concatenate([p["rgba"] for p in parts])[order]
    view = np.concatenate([p["view"] for p in parts])[order]
    tmp = out_dir / "data.tmp.npz"
    np.savez(tmp, rgba=rgba, obj=obj[order], view=view, objects=np.array(json.dumps(table)),
             config=np.array(json.dumps(asdict(cfg))))
    os.replace(tmp, data)
    for w in range(workers):
        for suf in (".json", ".npz"):
            (out_dir / f"chunk{w}{suf}").unlink(missing_ok=True)
    log(f"rendered {len(rgba)} views of {len(objects)} models ({cfg.split}) in {time.time() - t0:.0f}s -> {data}")
    return data


@dataclass
class CompactData:
    """A loaded split: ``rgba (N,R,R,4) uint8``, ``obj (N,)`` object index, ``objects`` table."""

    rgba: np.ndarray
    obj: np.ndarray
    view: np.ndarray
    objects: List[Dict]

    def classes(self) -> List[Optional[str]]:
        """Class of each view (None for unlabelled models)."""
        return [self.objects[i]["class"] for i in self.obj]


def load_dataset(path: Path) -> CompactData:
    z = np.load(path)
    return CompactData(rgba=z["rgba"], obj=z["obj"], view=z["view"], objects=json.loads(str(z["objects"])))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_chunk":
        spec = json.loads(Path(argv[1]).read_text())
        for o in spec["objects"]:
            o["entry"]["tags"] = tuple(o["entry"]["tags"])
            if o["entry"]["model_rotation"] is not None:
                o["entry"]["model_rotation"] = tuple(o["entry"]["model_rotation"])
        _render_chunk(spec["objects"], Path(argv[2]), int(spec["res"]), int(spec["seed"]))
        return 0
    ap = argparse.ArgumentParser(prog="python -m core.train.compact_data", description=__doc__.split("\n")[0])
    ap.add_argument("split", choices=["train", "test", "validation"])
    ap.add_argument("--views", type=int, default=40, help="views per labelled model")
    ap.add_argument("--views-unlabelled", type=int, default=8)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    cfg = DataConfig(a.split, a.views, a.views_unlabelled, a.res, a.seed)
    print(build_dataset(cfg, workers=a.workers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
