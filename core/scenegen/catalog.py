"""Sweet Home 3D furniture catalogs (Debian's ``sweethome3d-furniture``): parse and extract.

Each library is a ``.sh3f`` zip file (or an unpacked folder) holding
``PluginFurnitureCatalog.properties`` (Java properties, ``key#N=value``) and one folder
per model with its OBJ, MTL and textures. Sweet Home 3D models are Y-up, with their
front facing +Z; ``width`` / ``depth`` / ``height`` (cm) are the model's X / Z / Y extents
after ``modelRotation``.

No bpy, no heavy imports. The default folder is ``/usr/share/sweethome3d/furniture``,
overridden by ``$OV3R_SH3D_FURNITURE``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..cache import cache_dir

__all__ = [
    "CatalogEntry",
    "default_furniture_dir",
    "library_files",
    "parse_properties",
    "load_library",
    "load_catalog",
    "extract_model",
    "TEST_LIBRARY",
]

#: The library reserved for the test split (see :mod:`core.scenegen.splits`).
TEST_LIBRARY = "BlendSwap-CC-0"

_CATALOG_NAME = "PluginFurnitureCatalog.properties"


@dataclass(frozen=True)
class CatalogEntry:
    """One furniture model of a catalog.

    Attributes:
        id: catalog id, e.g. ``"Blend Swap CC-0#armchair"`` (unique across libraries).
        name: English display name (``"Armchair"``).
        category: Sweet Home 3D category (``"Living room"``, ``"Kitchen"``, ...).
        library: library name = the ``.sh3f`` file stem (``"BlendSwap-CC-0"``).
        model: path of the OBJ inside the library (no leading slash).
        width, depth, height: size in cm (X, Z, Y of the OBJ after ``model_rotation``).
        elevation: height above the floor in cm (wall-mounted items), 0 for most.
        drop_on_top_elevation: ``dropOnTopElevation`` in cm, -1 when absent.
        door_or_window: catalog flag.
        model_rotation: 3x3 row-major rotation applied to the OBJ first, or None.
        creator: model author.
        license: the library's licence line.
        tags: catalog tags.
    """

    id: str
    name: str
    category: str
    library: str
    model: str
    width: float
    depth: float
    height: float
    elevation: float = 0.0
    drop_on_top_elevation: float = -1.0
    door_or_window: bool = False
    model_rotation: Optional[Tuple[float, ...]] = None
    creator: str = ""
    license: str = ""
    tags: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def size_m(self) -> Tuple[float, float, float]:
        """``(width, depth, height)`` in metres."""
        return (self.width / 100.0, self.depth / 100.0, self.height / 100.0)


def default_furniture_dir() -> Path:
    return Path(os.environ.get("OV3R_SH3D_FURNITURE", "/usr/share/sweethome3d/furniture"))


def library_files(furniture_dir: Optional[Path] = None) -> Dict[str, Path]:
    """``{library name: path}`` of every ``.sh3f`` file (or folder with a catalog) in the folder."""
    d = Path(furniture_dir) if furniture_dir is not None else default_furniture_dir()
    out: Dict[str, Path] = {}
    if not d.is_dir():
        return out
    for p in sorted(d.iterdir()):
        if p.suffix == ".sh3f" or (p.is_dir() and (p / _CATALOG_NAME).exists()):
            out[p.stem if p.suffix == ".sh3f" else p.name] = p
    return out


_UNICODE = re.compile(r"\\u([0-9a-fA-F]{4})")


def parse_properties(text: str) -> Dict[str, str]:
    """Parse Java ``.properties`` text (comments, ``\\`` continuations, ``\\uXXXX`` escapes)."""
    out: Dict[str, str] = {}
    logical: List[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.lstrip() if not buf else raw.lstrip()
        if not buf and (not line or line[0] in "#!"):
            continue
        # odd number of trailing backslashes = continuation
        n_bs = len(line) - len(line.rstrip("\\"))
        if n_bs % 2 == 1:
            buf += line[:-1]
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    for line in logical:
        m = re.match(r"((?:[^=:\s\\]|\\.)+)\s*[=:\s]\s*(.*)$", line)
        if not m:
            continue
        key, val = m.group(1), m.group(2)
        val = _UNICODE.sub(lambda mm: chr(int(mm.group(1), 16)), val)
        val = re.sub(r"\\(.)", lambda mm: {"n": "\n", "t": "\t"}.get(mm.group(1), mm.group(1)), val)
        key = re.sub(r"\\(.)", r"\1", key)
        out[key] = val
    return out


def _read_catalog_text(lib_path: Path) -> str:
    if lib_path.is_dir():
        data = (lib_path / _CATALOG_NAME).read_bytes()
    else:
        with zipfile.ZipFile(lib_path) as z:
            data = z.read(_CATALOG_NAME)
    return data.decode("latin-1")  # Java properties are ISO-8859-1 + \u escapes


def _f(props: Dict[str, str], key: str, default: float) -> float:
    try:
        return float(props[key])
    except (KeyError, ValueError):
        return default


@lru_cache(maxsize=None)
def _load_library_cached(lib_path: str, library: str) -> Tuple[CatalogEntry, ...]:
    props = parse_properties(_read_catalog_text(Path(lib_path)))
    license_ = props.get("license", "")
    indices = sorted({int(k.split("#", 1)[1]) for k in props if k.startswith("id#") and k[3:].isdigit()})
    entries = []
    for i in indices:
        g = lambda k, d="": props.get(f"{k}#{i}", d)  # noqa: E731
        model = g("model").lstrip("/")
        if not model:
            continue
        rot = g("modelRotation").split()
        entries.append(
            CatalogEntry(
                id=g("id"),
                name=g("name"),
                category=g("category"),
                library=library,
                model=model,
                width=_f(props, f"width#{i}", 0.0),
                depth=_f(props, f"depth#{i}", 0.0),
                height=_f(props, f"height#{i}", 0.0),
                elevation=_f(props, f"elevation#{i}", 0.0),
                drop_on_top_elevation=_f(props, f"dropOnTopElevation#{i}", -1.0),
                door_or_window=g("doorOrWindow", "false").strip().lower() == "true",
                model_rotation=tuple(float(x) for x in rot) if len(rot) == 9 else None,
                creator=g("creator"),
                license=license_,
                tags=tuple(t.strip() for t in g("tags").split(",") if t.strip()),
            )
        )
    return tuple(entries)


def validation_furniture_dir() -> Path:
    """Folder holding the validation library (``$OV3R_CACHE`` or ~/.cache/ov3r, ``validation_furniture``),
    unpacked there by ``core.scenegen.validation_library``."""
    return cache_dir("validation_furniture")


def library_path(library: str, furniture_dir: Optional[Path] = None) -> Path:
    """The file or folder of a library, looked up by name in ``furniture_dir`` (the installed ones),
    then in the validation library's folder (``core.scenegen.validation_library``): it lives apart so
    that no split listing the installed libraries takes it, and is found only when named."""
    for d in (furniture_dir, validation_furniture_dir()):
        libs = library_files(d)
        if library in libs:
            return libs[library]
    raise FileNotFoundError(
        f"furniture library {library!r} not found in {furniture_dir or default_furniture_dir()} nor in "
        f"{validation_furniture_dir()}: install it with `apt-get install sweethome3d-furniture` "
        f"(`make validation-furniture` for the validation library)"
    )


def load_library(library: str, furniture_dir: Optional[Path] = None) -> List[CatalogEntry]:
    """All entries of one library (``"BlendSwap-CC-0"``, ``"Scopia"``, ...)."""
    return list(_load_library_cached(str(library_path(library, furniture_dir)), library))


def load_catalog(libraries: Optional[Sequence[str]] = None, furniture_dir: Optional[Path] = None) -> List[CatalogEntry]:
    """Entries of the given libraries (all installed ones when None), in catalog order."""
    libs = library_files(furniture_dir)
    names = list(libs) if libraries is None else list(libraries)
    out: List[CatalogEntry] = []
    for name in names:
        out.extend(load_library(name, furniture_dir))
    return out


def extract_model(entry: CatalogEntry, dest_root: Path, furniture_dir: Optional[Path] = None) -> Path:
    """Extract the model's folder (OBJ, MTL, textures) under ``dest_root``; returns the OBJ path.

    Idempotent: an already extracted model is reused (extraction goes to a temp folder
    renamed into place).
    """
    folder = entry.model.rsplit("/", 1)[0] if "/" in entry.model else ""
    dest = Path(dest_root) / entry.library / folder
    obj = Path(dest_root) / entry.library / entry.model
    if obj.exists():  # before the library lookup: a render process need not know where the library lives
        return obj
    lib_path = library_path(entry.library, furniture_dir)
    if lib_path.is_dir():
        src = lib_path / folder
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".x-"))
        shutil.copytree(src, tmp / "m")
        os.rename(tmp / "m", dest) if not dest.exists() else None
        shutil.rmtree(tmp, ignore_errors=True)
        return obj
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".x-"))
    try:
        prefix = folder + "/" if folder else ""
        with zipfile.ZipFile(lib_path) as z:
            for info in z.infolist():
                n = info.filename
                if info.is_dir() or not n.startswith(prefix):
                    continue
                rel = n[len(prefix):]
                if not folder and "/" in rel:
                    continue
                if ".." in Path(rel).parts:
                    continue
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as fsrc, open(target, "wb") as fdst:
                    shutil.copyfileobj(fsrc, fdst)
        if not dest.exists():
            os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return obj
