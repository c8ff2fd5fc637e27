"""Training data of the OVS fusion: per training-library model, its surface points and
the compact encoder's descriptors of its rendered views.

Only the **training libraries** are used (:func:`core.train.compact_data.assert_training_split`:
never a model of the test library ``BlendSwap-CC-0``, checked by library and by id). Per model
of the compact encoder's render set (:mod:`core.train.compact_data`, already cached):

- **surface points**: ``n_points`` area-uniform samples of the OBJ mesh (own reader:
  :func:`read_obj` / :func:`read_mtl`) with the face normals and the colour of the material
  (MTL ``Kd`` converted to display sRGB, or the texel of ``map_Kd`` at the sample's UV when the
  material has a texture), placed like the renders and the benchmark rooms place it: Y-up OBJ
  -> Z-up, scaled per axis to the catalog size (metres), base at z = 0, centred in x / y;
- **2D features** of each rendered view, by the compact image encoder (same 384-d
  all-MiniLM-L6-v2 space as the stage's descriptors). **The compact encoder fills the CLIP3R
  slot until a trained CLIP3R gives its own F_oCLIP**:
  ``inst`` = the mask crop exactly as the semantics stage makes it
  (:func:`core.semantics.descriptors.mask_crops`, ``OvsDataConfig.crop``: "masked" = square
  crop, 10 % margin, grey outside the mask; "context" = 25 % margin, surroundings kept; the
  mask given to the encoder); ``inst_aug`` = the same after a random background, an
  occluder, colour jitter and a slightly wrong mask (what real segments look like);
  ``scene`` = the whole image of the object placed small in a cluttered "room-like" canvas,
  without mask (the stand-in for a keyframe's full-image descriptor).
- **structure** (wall, floor, ceiling, door, window: classes the catalog has no model of):
  encoder descriptors of procedural images (:func:`structure_image`); their points are
  procedural planes made during training (:func:`structure_points`).

Cached by content hash as ``$OV3R_CACHE/ovs_data/<hash>/data.npz`` (default
``~/.cache/ov3r/ovs_data``): the hash covers this module's data version, the config, the
render set's key and the encoder weights' sha256.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..scenegen.catalog import CatalogEntry, extract_model
from ..scenegen.splits import TEST_LIBRARIES
from ..scenegen.taxonomy import CLASSES, STRUCTURE_CLASSES
from ..cache import cache_dir
from ..hashing import file_sha256
from .compact_data import CompactData, DataConfig, assert_training_split

__all__ = [
    "DATA_VERSION",
    "TEXT_CLASSES",
    "ObjMesh",
    "OvsData",
    "OvsDataConfig",
    "build_ovs_data",
    "encode_views",
    "load_ovs_data",
    "model_points",
    "ovs_data_dir",
    "prepare_ovs_data",
    "read_mtl",
    "read_obj",
    "sample_mesh",
    "structure_image",
    "structure_points",
]

DATA_VERSION = 1
#: the vocabulary the fusion is trained against: every class of the benchmark taxonomy but "unlabeled"
TEXT_CLASSES: tuple[str, ...] = tuple(CLASSES[1:])


def with_crop(spec: dict, crop: str) -> dict:
    """``spec`` (a cache key's fields) with ``crop`` added unless it is "masked", the crop from
    before it was a setting: the keys of caches built then stay valid."""
    return spec if crop == "masked" else {**spec, "crop": crop}


def _cache_root() -> Path:
    return cache_dir("ovs_data")


# ------------------------------------------------------------------------------------ OBJ / MTL

@dataclass
class ObjMesh:
    """Triangulated OBJ: ``v (V,3)``, ``vt (T,2)``, ``tris (F,3)`` vertex ids, ``tri_uv (F,3)``
    texture-coordinate ids (-1: none), ``tri_mat (F,)`` index into ``materials`` (-1: none),
    ``mtllibs``: MTL file names referenced."""

    v: np.ndarray
    vt: np.ndarray
    tris: np.ndarray
    tri_uv: np.ndarray
    tri_mat: np.ndarray
    materials: list[str] = field(default_factory=list)
    mtllibs: list[str] = field(default_factory=list)


def _index(tok: str, n: int) -> int:
    """OBJ index (1-based, negative = relative to the end) -> 0-based; '' -> -1."""
    if not tok:
        return -1
    i = int(tok)
    return i - 1 if i > 0 else n + i


def read_obj(path: str | Path) -> ObjMesh:
    """Read the geometry of an OBJ file: vertices, texture coordinates, faces (fan-triangulated),
    ``usemtl`` / ``mtllib``. Normals, groups, lines and points are ignored."""
    v: list[list[float]] = []
    vt: list[list[float]] = []
    tris: list[tuple[int, int, int]] = []
    tuv: list[tuple[int, int, int]] = []
    tmat: list[int] = []
    mats: list[str] = []
    mat_id: dict[str, int] = {}
    libs: list[str] = []
    cur = -1
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if len(line) < 2:
                continue
            c0, c1 = line[0], line[1]
            if c0 == "v" and c1 == " ":
                p = line.split()
                v.append([float(p[1]), float(p[2]), float(p[3])])
            elif c0 == "v" and c1 == "t":
                p = line.split()
                vt.append([float(p[1]), float(p[2]) if len(p) > 2 else 0.0])
            elif c0 == "f" and c1 in " \t":
                toks = line.split()[1:]
                nv, nt = len(v), len(vt)
                vi, ti = [], []
                for t in toks:
                    parts = t.split("/")
                    vi.append(_index(parts[0], nv))
                    ti.append(_index(parts[1], nt) if len(parts) > 1 else -1)
                for k in range(1, len(vi) - 1):
                    tris.append((vi[0], vi[k], vi[k + 1]))
                    tuv.append((ti[0], ti[k], ti[k + 1]))
                    tmat.append(cur)
            elif line.startswith("usemtl"):
                name = line[6:].strip()
                if name not in mat_id:
                    mat_id[name] = len(mats)
                    mats.append(name)
                cur = mat_id[name]
            elif line.startswith("mtllib"):
                libs.append(line[6:].strip())
    return ObjMesh(np.asarray(v, np.float64).reshape(-1, 3), np.asarray(vt, np.float64).reshape(-1, 2),
                   np.asarray(tris, np.int64).reshape(-1, 3), np.asarray(tuv, np.int64).reshape(-1, 3),
                   np.asarray(tmat, np.int64), mats, libs)


def read_mtl(path: str | Path) -> dict[str, dict]:
    """``{material: {"kd": (3,) float in [0, 1], "map_kd": file name | None}}`` of an MTL file
    (missing Kd: light grey)."""
    out: dict[str, dict] = {}
    cur = None
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            p = line.strip().split()
            if not p:
                continue
            key = p[0].lower()
            if key == "newmtl":
                cur = {"kd": np.array([0.8, 0.8, 0.8]), "map_kd": None}
                out[" ".join(p[1:])] = cur
            elif cur is None:
                continue
            elif key == "kd" and len(p) >= 4:
                cur["kd"] = np.clip(np.array([float(x) for x in p[1:4]]), 0, 1)
            elif key == "map_kd" and len(p) >= 2:
                cur["map_kd"] = p[-1]  # options (-s, -o ...) come before the file name
    return out


def _srgb(x: np.ndarray) -> np.ndarray:
    """Linear -> display sRGB (what Blender shows of a base colour with the Standard view)."""
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _load_texture(path: Path) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.draft("RGB", (512, 512))  # JPEG: decode at a reduced size (colours only)
            im = im.convert("RGB")
            if max(im.size) > 512:
                im.thumbnail((512, 512))
            return np.asarray(im, np.float32) / 255.0
    except Exception:  # noqa: BLE001 (any unreadable / missing texture: fall back to Kd)
        return None


def sample_mesh(mesh: ObjMesh, n: int, rng: np.random.Generator, materials: dict[str, dict] | None = None,
                folder: Path | None = None, textures: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` area-uniform surface samples: ``xyz (n,3)``, unit face ``normals (n,3)``, ``rgb (n,3)``
    float in [0, 1] (material colour, or the texel when the material has a readable texture)."""
    t = mesh.v[mesh.tris]  # (F,3,3)
    nrm = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    a2 = np.linalg.norm(nrm, axis=1)
    ok = np.flatnonzero(a2 > 1e-18)
    if len(ok) == 0:
        raise ValueError("mesh has no triangle with an area")
    idx = ok[rng.choice(len(ok), size=n, p=a2[ok] / a2[ok].sum())]
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    w = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], 1)  # barycentric
    xyz = np.einsum("nk,nkd->nd", w, t[idx])
    normals = nrm[idx] / a2[idx, None]
    materials = materials or {}
    rgb = np.full((n, 3), 0.8)
    tex_cache: dict[str, np.ndarray | None] = {}
    for m in np.unique(mesh.tri_mat[idx]):
        sel = mesh.tri_mat[idx] == m
        info = materials.get(mesh.materials[m]) if m >= 0 else None
        if info is None:
            continue
        rgb[sel] = _srgb(info["kd"])
        if not (textures and info.get("map_kd") and folder is not None and len(mesh.vt)):
            continue
        name = info["map_kd"]
        if name not in tex_cache:
            tex_cache[name] = _load_texture(folder / name)
        tex = tex_cache[name]
        uvi = mesh.tri_uv[idx[sel]]  # (k,3)
        has = (uvi >= 0).all(1)
        if tex is None or not has.any():
            continue
        uv = np.einsum("nk,nkd->nd", w[sel][has], mesh.vt[uvi[has]])
        H, W = tex.shape[:2]
        px = np.clip((np.mod(uv[:, 0], 1.0) * W).astype(int), 0, W - 1)
        py = np.clip(((1.0 - np.mod(uv[:, 1], 1.0)) * H).astype(int), 0, H - 1)
        sub = np.flatnonzero(sel)[has]
        rgb[sub] = tex[py, px]
    return xyz, normals, rgb


def model_points(entry: CatalogEntry, n: int, rng: np.random.Generator, model_root: Path | None = None,
                 textures: bool = True) -> np.ndarray:
    """``(n, 9) float32`` surface samples of a catalog model (xyz metres, rgb [0, 1], normal), placed
    like the renders: OBJ Y-up -> Z-up (Blender's importer, forward -Z / up Y), scaled per axis to
    the catalog (width, depth, height), base at z = 0, centred in x / y."""
    from ..scenegen.room_render import model_cache_dir

    obj = extract_model(entry, Path(model_root) if model_root is not None else model_cache_dir())
    mesh = read_obj(obj)
    mats: dict[str, dict] = {}
    for lib in mesh.mtllibs:
        p = obj.parent / lib
        if p.is_file():
            mats.update(read_mtl(p))
    xyz, nrm, rgb = sample_mesh(mesh, n, rng, mats, obj.parent, textures)
    R = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # OBJ (x, y, z) -> Blender (x, -z, y)
    xyz, nrm = xyz @ R.T, nrm @ R.T
    lo, hi = xyz.min(0), xyz.max(0)
    ext = np.maximum(hi - lo, 1e-9)
    size = np.array(entry.size_m, float)
    s = size / ext if size.min() > 0 else np.full(3, 1.0 / ext.max())
    xyz = (xyz - np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])) * s
    nrm = nrm / s  # normals transform with the inverse transpose
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return np.concatenate([xyz, rgb, nrm], 1).astype(np.float32)


# ------------------------------------------------------------------------------------ 2D features

def _jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness / contrast / saturation / gamma jitter of a float image in [0, 1]."""
    img = img * rng.uniform(0.6, 1.3)
    m = img.mean()
    img = (img - m) * rng.uniform(0.7, 1.3) + m
    g = img.mean(2, keepdims=True)
    img = g + (img - g) * rng.uniform(0.5, 1.4)
    return np.clip(np.clip(img, 0, 1) ** rng.uniform(0.75, 1.35), 0, 1).astype(np.float32)


def _paste(canvas: np.ndarray, rgba: np.ndarray, scale: float, cy: float, cx: float) -> np.ndarray:
    """Alpha-composite ``rgba (r,r,4) uint8`` resized by ``scale`` onto ``canvas (H,W,3) float``
    at centre ``(cy, cx)`` (fractions); returns the pasted alpha ``(H, W)`` float."""
    import cv2

    H, W = canvas.shape[:2]
    s = max(4, round(rgba.shape[0] * scale))
    o = cv2.resize(rgba, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    y0, x0 = int(cy * H - s / 2), int(cx * W - s / 2)
    ys, xs = slice(max(0, y0), min(H, y0 + s)), slice(max(0, x0), min(W, x0 + s))
    oy, ox = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
    alpha = np.zeros((H, W), np.float32)
    if ys.stop <= ys.start or xs.stop <= xs.start:
        return alpha
    a = o[oy, ox, 3:]
    canvas[ys, xs] = o[oy, ox, :3] * a + canvas[ys, xs] * (1 - a)
    alpha[ys, xs] = a[..., 0]
    return alpha


def _wrong_mask(m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A segmenter's mask: dilated or eroded by a few pixels (never empty)."""
    import cv2

    r = int(rng.integers(1, 4))
    k = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    out = (cv2.dilate if rng.uniform() < 0.5 else cv2.erode)(m.astype(np.uint8), k).astype(bool)
    return out if out.sum() >= 16 else m


def encode_views(rgba: np.ndarray, encoder, rng: np.random.Generator, pool: np.ndarray | None = None,
                 batch: int = 256, crop: str = "masked") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Descriptors of RGBA renders ``(V, R, R, 4) uint8`` (alpha = mask) -> ``inst``, ``inst_aug``,
    ``scene`` each ``(V, D) float32`` (see the module docstring). ``pool``: other renders for
    backgrounds, occluders and clutter; ``crop``: the mask crops' kind, as the semantics stage's
    (:data:`core.semantics.descriptors.CROPS`)."""
    from ..semantics.descriptors import GREY, crop_kinds, encode_crops, mask_crops, normalise
    from .compact_aug import random_background

    V, R = len(rgba), rgba.shape[1]
    size = int(getattr(encoder, "size", 96))
    pool = pool if pool is not None and len(pool) else rgba
    kinds = crop_kinds(crop)
    crops: list[list[np.ndarray]] = [[] for _ in kinds]  # per crop kind: clean, augmented, clean, ...
    cmasks: list[list[np.ndarray]] = [[] for _ in kinds]
    scenes = []
    for i in range(V):
        x = rgba[i].astype(np.float32) / 255.0
        a = x[..., 3:]
        m = a[..., 0] > 0.5
        if m.sum() < 4:
            m = np.ones_like(m)
        clean = (x[..., :3] * a + GREY / 255.0 * (1 - a)) * 255
        for j, (margin, bg) in enumerate(kinds):
            c, cm = mask_crops(clean.astype(np.uint8), [m], size, margin, bg)
            crops[j].append(c[0])
            cmasks[j].append(cm[0])
        # augmented instance crop: background, occluder, jitter, imperfect mask
        img = x[..., :3] * a + random_background(rng, R, pool) * (1 - a)
        vis = m.copy()
        if rng.uniform() < 0.3:
            alpha = _paste(img, pool[int(rng.integers(len(pool)))], rng.uniform(0.5, 0.9), rng.uniform(0.2, 0.8),
                           rng.uniform(0.0, 1.0))
            nv = vis & (alpha < 0.5)
            if nv.sum() > 0.4 * vis.sum():
                vis = nv
            else:  # too much hidden: undo by recompositing without the occluder
                img = x[..., :3] * a + random_background(rng, R, pool) * (1 - a)
        img = _jitter(img, rng)
        if rng.uniform() < 0.5:
            vis = _wrong_mask(vis, rng)
        for j, (margin, bg) in enumerate(kinds):
            c, cm = mask_crops((img * 255).astype(np.uint8), [vis], size, margin, bg)
            crops[j].append(c[0])
            cmasks[j].append(cm[0])
        # scene-level image: the object small among clutter on a room-like background
        canvas = random_background(rng, pool.shape[1], pool)
        for _ in range(int(rng.integers(1, 4))):
            _paste(canvas, pool[int(rng.integers(len(pool)))], rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.9),
                   rng.uniform(0, 1))
        _paste(canvas, rgba[i], rng.uniform(0.3, 0.8), rng.uniform(0.35, 0.75), rng.uniform(0.2, 0.8))
        scenes.append((_jitter(canvas, rng) * 255).astype(np.uint8))
    inst = normalise(sum(encode_crops(encoder, np.stack(c), np.stack(cm), batch) for c, cm in zip(crops, cmasks)))
    scene_a = np.stack(scenes)
    scene = np.concatenate([encoder.encode(scene_a[j:j + batch], None) for j in range(0, len(scene_a), batch)])
    return inst[0::2].astype(np.float32), inst[1::2].astype(np.float32), scene.astype(np.float32)


# ------------------------------------------------------------------------------------ structure

STRUCTURE: tuple[str, ...] = tuple(STRUCTURE_CLASSES)  # wall, floor, ceiling, door, window


def _hsv(h, s, v) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), np.float32)


def _structure_colour(cls: str, rng: np.random.Generator) -> np.ndarray:
    """Generic colour priors (not fitted to any benchmark scene): pale walls, white ceilings,
    wood / grey floors, wooden or painted doors, bright / sky-blue windows."""
    if cls == "wall":
        return _hsv(rng.uniform(), rng.uniform(0.0, 0.35), rng.uniform(0.45, 0.97))
    if cls == "ceiling":
        return _hsv(rng.uniform(), rng.uniform(0.0, 0.12), rng.uniform(0.7, 1.0))
    if cls == "floor":
        if rng.uniform() < 0.6:
            return _hsv(rng.uniform(0.03, 0.14), rng.uniform(0.25, 0.75), rng.uniform(0.2, 0.7))
        return _hsv(rng.uniform(), rng.uniform(0.0, 0.15), rng.uniform(0.2, 0.8))
    if cls == "door":
        if rng.uniform() < 0.7:
            return _hsv(rng.uniform(0.04, 0.12), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.75))
        return _hsv(rng.uniform(), rng.uniform(0.0, 0.2), rng.uniform(0.6, 0.97))
    if cls == "window":
        return _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.1, 0.5), rng.uniform(0.6, 1.0))
    raise ValueError(f"not a structure class: {cls}")


def structure_image(cls: str, rng: np.random.Generator, pool: np.ndarray | None = None,
                    R: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A procedural view of a structure element: ``image (R,R,3) uint8`` and its ``mask (R,R) bool``."""
    from .compact_aug import _lowfreq

    def tex(col, amp=0.12, cells=None):
        lf = _lowfreq(rng, R, int(cells or rng.integers(2, 10))).mean(2, keepdims=True)
        return np.clip(col[None, None] * (1 - amp + 2 * amp * lf), 0, 1)

    wall_c, floor_c = _structure_colour("wall", rng), _structure_colour("floor", rng)
    img = tex(wall_c)
    mask = np.zeros((R, R), bool)
    yy, xx = np.mgrid[:R, :R]
    if cls == "wall":
        h = int(rng.uniform(0.6, 1.0) * R)  # floor strip at the bottom
        img[h:] = tex(floor_c, 0.25)[h:]
        mask[:h] = True
    elif cls in ("floor", "ceiling"):
        h = int(rng.uniform(0.1, 0.5) * R)
        col = _structure_colour(cls, rng)
        plane = tex(col, 0.25 if cls == "floor" else 0.08, rng.integers(3, 16))
        # perspective-ish: the far edge is a slanted line
        edge = h + (xx - R / 2) * rng.uniform(-0.3, 0.3)
        sel = (yy >= edge) if cls == "floor" else (yy <= R - edge)
        img[sel] = plane[sel]
        mask = sel
    else:  # door / window: a rectangle in a wall
        w, hh = (rng.uniform(0.25, 0.5), rng.uniform(0.55, 0.9)) if cls == "door" else (
            rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.6))
        cy, cx = (1 - hh / 2 - rng.uniform(0, 0.08), rng.uniform(0.3, 0.7)) if cls == "door" else (
            rng.uniform(0.3, 0.55), rng.uniform(0.3, 0.7))
        sel = (np.abs(yy / R - cy) <= hh / 2) & (np.abs(xx / R - cx) <= w / 2)
        col = _structure_colour(cls, rng)
        if cls == "window":  # frame + sky gradient + mullion
            frame = _hsv(0, 0, rng.uniform(0.8, 1.0))
            sky = np.clip(col[None, None] * (0.8 + 0.4 * (1 - yy / R))[..., None], 0, 1)
            img[sel] = sky[sel]
            inner = (np.abs(yy / R - cy) <= hh / 2 - 0.03) & (np.abs(xx / R - cx) <= w / 2 - 0.03)
            mull = np.abs(xx / R - cx) < 0.012
            img[sel & (~inner | mull)] = frame
        else:
            img[sel] = tex(col, 0.1)[sel]
            hy, hx = int((cy + 0.02) * R), int((cx + w / 2 - 0.05) * R)
            img[max(0, hy - 1):hy + 2, max(0, hx - 2):hx + 2] = 0.8
        mask = sel
    if pool is not None and len(pool) and cls in ("wall", "floor") and rng.uniform() < 0.7:
        for _ in range(int(rng.integers(1, 3))):  # furniture in front cuts holes in the mask
            alpha = _paste(img, pool[int(rng.integers(len(pool)))], rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.9),
                           rng.uniform(0, 1))
            nm = mask & (alpha < 0.5)
            if nm.sum() > 0.3 * mask.sum():
                mask = nm
    return (_jitter(img, rng) * 255).astype(np.uint8), mask


def structure_points(cls: str, rng: np.random.Generator, n: int = 2048) -> np.ndarray:
    """``(n, 9) float32`` procedural points of a structure element's visible part (metres, z up):
    walls (sometimes a corner), floor / ceiling patches with holes, doors, windows."""
    def plane(w, h, n_):
        u, v = rng.uniform(0, w, n_), rng.uniform(0, h, n_)
        return u, v

    col = _structure_colour(cls, rng)
    if cls == "wall":
        w, h = rng.uniform(0.6, 5.0), rng.uniform(0.8, 2.8)
        u, v = plane(w, h, n)
        xyz = np.stack([u, np.zeros(n), v], 1)
        nrm = np.tile([0.0, 1.0, 0.0], (n, 1))
        if rng.uniform() < 0.25:  # a corner: a second wall at a right angle
            k = int(n * rng.uniform(0.2, 0.5))
            w2 = rng.uniform(0.5, 3.0)
            xyz[:k] = np.stack([np.zeros(k), rng.uniform(0, w2, k), rng.uniform(0, h, k)], 1)
            nrm[:k] = [1.0, 0.0, 0.0]
    elif cls in ("floor", "ceiling"):
        w, d = rng.uniform(0.8, 5.5), rng.uniform(0.8, 4.5)
        u, v = plane(w, d, n)
        xyz = np.stack([u, v, np.zeros(n)], 1)
        nrm = np.tile([0.0, 0.0, 1.0 if cls == "floor" else -1.0], (n, 1))
    elif cls == "door":
        w, h = rng.uniform(0.7, 1.0), rng.uniform(1.9, 2.15)
        u, v = plane(w, h, n)
        xyz = np.stack([u, np.zeros(n), v], 1)
        nrm = np.tile([0.0, 1.0, 0.0], (n, 1))
    else:  # window: frame and glass, slightly recessed glass
        w, h = rng.uniform(0.6, 1.8), rng.uniform(0.7, 1.6)
        u, v = plane(w, h, n)
        fr = (u < 0.06) | (u > w - 0.06) | (v < 0.06) | (v > h - 0.06)
        xyz = np.stack([u, np.where(fr, 0.0, -0.04), v], 1)
        nrm = np.tile([0.0, 1.0, 0.0], (n, 1))
    if cls in ("wall", "floor", "ceiling") and rng.uniform() < 0.6:
        # furniture standing in front / on it hides parts: remove a few boxes
        span_lo, span_hi = xyz.min(0), xyz.max(0)
        keep = np.ones(n, bool)
        for _ in range(int(rng.integers(1, 4))):
            c = rng.uniform(span_lo, span_hi)
            half = rng.uniform(0.15, 0.6, 3)
            keep &= ~(np.abs(xyz - c) <= half).all(1)
        if keep.sum() > n // 4:
            xyz, nrm = xyz[keep], nrm[keep]
    rgb = np.clip(col[None] * rng.uniform(0.9, 1.1, (len(xyz), 1)), 0, 1)
    if cls == "window":
        fr = xyz[:, 1] == 0.0
        rgb[fr] = rng.uniform(0.8, 1.0)
    xyz = xyz + rng.normal(0, 0.003, xyz.shape)
    idx = rng.choice(len(xyz), size=n, replace=len(xyz) < n)
    return np.concatenate([xyz[idx], rgb[idx], nrm[idx]], 1).astype(np.float32)


# ------------------------------------------------------------------------------------ dataset

@dataclass(frozen=True)
class OvsDataConfig:
    """``n_points`` surface samples per model; ``struct_images`` procedural images per structure
    class; ``compact``: the render set whose views are described (the compact encoder's)."""

    n_points: int = 2048
    struct_images: int = 96
    seed: int = 0
    textures: bool = True
    crop: str = "masked"  # core.semantics.descriptors.CROPS: how the views' mask crops are cut
    compact: DataConfig = field(default_factory=lambda: DataConfig("train", 48, 8, 128, 0))

    def key(self, render_key: str, encoder_sha: str) -> str:
        d = asdict(self)
        d = with_crop({k: v for k, v in d.items() if k != "crop"}, self.crop)
        h = hashlib.sha256(json.dumps({"v": DATA_VERSION, "cfg": d, "renders": render_key, "encoder": encoder_sha},
                                      sort_keys=True).encode())
        return h.hexdigest()[:16]


@dataclass
class OvsData:
    """The prepared training set (arrays as stored in ``data.npz``).

    ``points (M, n, 9) float16`` per model; ``inst`` / ``inst_aug`` / ``scene (M, V, D) float16``
    view descriptors (rows ``>= nview[m]`` are padding); ``nview (M,)``; ``label (M,)`` index into
    :data:`TEXT_CLASSES` (-1: a model without a taxonomy class: distillation only);
    ``objects``: {id, name, library, class} per model; ``struct_inst`` / ``struct_scene (S, D)``,
    ``struct_label (S,)`` index into TEXT_CLASSES; ``meta``: provenance."""

    points: np.ndarray
    inst: np.ndarray
    inst_aug: np.ndarray
    scene: np.ndarray
    nview: np.ndarray
    label: np.ndarray
    objects: list[dict]
    struct_inst: np.ndarray
    struct_scene: np.ndarray
    struct_label: np.ndarray
    meta: dict = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, points=self.points, inst=self.inst, inst_aug=self.inst_aug, scene=self.scene,
                 nview=self.nview, label=self.label, objects=np.array(json.dumps(self.objects)),
                 struct_inst=self.struct_inst, struct_scene=self.struct_scene, struct_label=self.struct_label,
                 meta=np.array(json.dumps(self.meta)))
        os.replace(tmp, path)
        return path


def load_ovs_data(path: Path) -> OvsData:
    z = np.load(path)
    return OvsData(points=z["points"], inst=z["inst"], inst_aug=z["inst_aug"], scene=z["scene"], nview=z["nview"],
                   label=z["label"], objects=json.loads(str(z["objects"])), struct_inst=z["struct_inst"],
                   struct_scene=z["struct_scene"], struct_label=z["struct_label"], meta=json.loads(str(z["meta"])))


def _check_no_test(entries: Sequence[CatalogEntry], objects: Sequence[dict]) -> None:
    assert_training_split(entries)
    bad = [o["id"] for o in objects if o.get("library") in TEST_LIBRARIES]
    if bad:
        raise AssertionError(f"OVS training data contains test-library models: {bad[:5]}")


def build_ovs_data(entries: Sequence[CatalogEntry], renders: CompactData, encoder, cfg: OvsDataConfig = OvsDataConfig(),
                   model_root: Path | None = None, log: Callable[[str], None] = print) -> OvsData:
    """Build the dataset for ``entries`` (training-library models) from the render set ``renders``
    (its ``objects`` table is matched to the entries by id; a model without views is skipped)."""
    rng = np.random.default_rng([cfg.seed, 7])
    by_id = {e.id: e for e in entries}
    objs = [o for o in renders.objects if o["id"] in by_id]
    _check_no_test(entries, objs)
    D = int(encoder.dim)
    obj_index = {o["id"]: i for i, o in enumerate(renders.objects)}
    views_of: dict[int, np.ndarray] = {}
    order = np.argsort(renders.obj, kind="stable")
    starts = np.searchsorted(renders.obj[order], np.arange(len(renders.objects) + 1))
    for i in range(len(renders.objects)):
        views_of[i] = order[starts[i]:starts[i + 1]]
    kept, pts, nviews = [], [], []
    insts, augs, scenes = [], [], []
    pool_idx = rng.choice(len(renders.rgba), size=min(512, len(renders.rgba)), replace=False)
    pool = renders.rgba[np.sort(pool_idx)]
    t0 = time.time()
    for k, o in enumerate(objs):
        vi = views_of[obj_index[o["id"]]]
        if len(vi) == 0:
            continue
        e = by_id[o["id"]]
        try:
            p = model_points(e, cfg.n_points, np.random.default_rng([cfg.seed, k, 11]), model_root, cfg.textures)
        except (ValueError, OSError) as err:
            log(f"skip {e.id}: {err}")
            continue
        inst, aug, scene = encode_views(renders.rgba[vi], encoder, np.random.default_rng([cfg.seed, k, 13]), pool,
                                         crop=cfg.crop)
        kept.append(o)
        pts.append(p)
        nviews.append(len(vi))
        insts.append(inst)
        augs.append(aug)
        scenes.append(scene)
        if (k + 1) % 25 == 0:
            log(f"ovs data: {k + 1}/{len(objs)} models ({time.time() - t0:.0f}s)")
    M, V = len(kept), max(nviews) if nviews else 1

    def pad(rows: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((M, V, D), np.float16)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out

    label = np.array([TEXT_CLASSES.index(o["class"]) if o.get("class") in TEXT_CLASSES else -1 for o in kept],
                     np.int64)
    # structure: procedural images described by the same encoder
    s_imgs, s_masks, s_lab, s_scenes = [], [], [], []
    from .compact_aug import random_background

    for cls in STRUCTURE:
        for _ in range(cfg.struct_images):
            img, m = structure_image(cls, rng, pool)
            s_imgs.append(img)
            s_masks.append(m)
            s_lab.append(TEXT_CLASSES.index(cls))
            canvas = random_background(rng, pool.shape[1], pool)
            for _ in range(int(rng.integers(1, 4))):
                _paste(canvas, pool[int(rng.integers(len(pool)))], rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.9),
                       rng.uniform(0, 1))
            s_scenes.append((_jitter(canvas, rng) * 255).astype(np.uint8))
    from ..semantics.descriptors import mask_descriptors

    s_inst = np.concatenate([mask_descriptors(im, [m], encoder, int(getattr(encoder, "size", 96)), cfg.crop)
                             for im, m in zip(s_imgs, s_masks)]) if s_imgs else np.zeros((0, D), np.float32)
    s_scene = encoder.encode(np.stack(s_scenes), None) if s_scenes else np.zeros((0, D), np.float32)
    objects = [{"id": o["id"], "name": o["name"], "library": o["library"], "class": o.get("class")} for o in kept]
    _check_no_test(entries, objects)
    log(f"ovs data: {M} models ({int((label >= 0).sum())} with a class), {len(s_lab)} structure samples "
        f"in {time.time() - t0:.0f}s")
    return OvsData(points=np.stack(pts).astype(np.float16) if pts else np.zeros((0, cfg.n_points, 9), np.float16),
                   inst=pad(insts), inst_aug=pad(augs), scene=pad(scenes), nview=np.array(nviews, np.int64),
                   label=label, objects=objects, struct_inst=s_inst.astype(np.float16),
                   struct_scene=s_scene.astype(np.float16), struct_label=np.array(s_lab, np.int64),
                   meta={"data_version": DATA_VERSION, "config": {**asdict(cfg), "compact": asdict(cfg.compact)},
                         "text_classes": list(TEXT_CLASSES), "seconds": round(time.time() - t0, 1),
                         "clip_slot": "compact image encoder (stand-in for CLIP3R's F_oCLIP)"})


def ovs_data_dir(cfg: OvsDataConfig = OvsDataConfig(), compact_weights: str | Path | None = None) -> Path:
    from ..models.compact.encoder import DEFAULT_WEIGHTS
    from .compact_data import select_entries

    w = Path(compact_weights) if compact_weights else DEFAULT_WEIGHTS
    return _cache_root() / cfg.key(cfg.compact.key(select_entries(cfg.compact.split)), file_sha256(w))


def prepare_ovs_data(cfg: OvsDataConfig = OvsDataConfig(), compact_weights: str | Path | None = None,
                     render_workers: int = 2, log: Callable[[str], None] = print) -> Path:
    """The cached ``data.npz`` of ``cfg`` (built on first use: renders from the compact data cache,
    rendered first if missing; every model of the training libraries that has views)."""
    from ..models.compact import ImageEncoder
    from .compact_data import build_dataset, load_dataset, select_entries

    if cfg.compact.split != "train":
        raise ValueError("OVS training data comes from the training split only")
    out = ovs_data_dir(cfg, compact_weights) / "data.npz"
    if out.exists():
        return out
    entries = select_entries("train")
    assert_training_split(entries)
    renders = load_dataset(build_dataset(cfg.compact, workers=render_workers, log=log))
    encoder = ImageEncoder.from_pretrained(compact_weights, device="cpu")
    data = build_ovs_data(entries, renders, encoder, cfg, log=log)
    data.meta["compact_weights_sha256"] = file_sha256(Path(compact_weights) if compact_weights else _default_weights())
    data.save(out)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def _default_weights() -> Path:
    from ..models.compact.encoder import DEFAULT_WEIGHTS

    return DEFAULT_WEIGHTS


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m core.train.ovs_data [--points N] [--struct-images N] [--no-textures]``: build the cache."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m core.train.ovs_data", description=main.__doc__)
    ap.add_argument("--points", type=int, default=OvsDataConfig.n_points)
    ap.add_argument("--struct-images", type=int, default=OvsDataConfig.struct_images)
    ap.add_argument("--no-textures", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--compact-weights", default=None, help="image encoder weights (default: the shipped compact)")
    a = ap.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    print(prepare_ovs_data(OvsDataConfig(n_points=a.points, struct_images=a.struct_images, textures=not a.no_textures),
                           a.compact_weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
