"""A third furniture library for choosing settings: Sweet Home 3D's own default catalog.

The training libraries teach the compact encoder's heads and the test library (``BlendSwap-CC-0``)
only reports; validation rooms built from training-library furniture (``suite.validation_configs``)
flatter whatever was trained on those models. Sweet Home 3D's default catalog (100 models: eTeks'
beds, chairs, sofas, tables, kitchen and bathroom pieces, lamps, windows, doors) is in neither: a
held-out library for decisions about generalisation to unseen furniture (``compact_eval --split
validation``).

It ships inside ``sweethome3d.jar`` of the Debian package ``sweethome3d`` (GPL; the models CC-BY 3.0
or GPL), whose Java dependencies this project does not need, so the package is unpacked, not
installed. Its OBJ files name materials ("amber", "flblonde", ...) without an ``mtllib``: Java 3D's
OBJ loader supplies them from its built-in Wavefront material table (``DefaultMaterials`` in
``j3dutils.jar``, Debian package ``libjava3d-java``). That table is copied out of the class file into
``default.mtl`` beside the models and each OBJ gets an ``mtllib`` line, so Blender's importer sees
the colours Sweet Home 3D shows (without it every model renders grey)::

    make validation-furniture      # apt-get download sweethome3d libjava3d-java; dpkg-deb -x; this module

This module copies the catalog (``DefaultFurnitureCatalog.properties``) and its model folder out of
the jar into ``<cache>/validation_furniture/SweetHome3D-default/`` as an unpacked library that
``core.scenegen.catalog`` reads like any other (``furniture_dir=validation_furniture_dir()``). It lives
outside ``/usr/share/sweethome3d/furniture`` on purpose: ``splits.training_libraries()`` takes every
library there but the test one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from .catalog import _CATALOG_NAME, load_library, validation_furniture_dir

__all__ = ["VALIDATION_LIBRARY", "java3d_default_materials", "unpack_default_catalog", "validation_furniture_dir"]

VALIDATION_LIBRARY = "SweetHome3D-default"
_JAR_CATALOG = "com/eteks/sweethome3d/io/DefaultFurnitureCatalog.properties"
_JAR_MODELS = "com/eteks/sweethome3d/io/resources/"
_J3D_MATERIALS = "com/sun/j3d/loaders/objectfile/DefaultMaterials.class"
MTL_NAME = "default.mtl"


def java3d_default_materials(j3dutils_jar: Path) -> str:
    """Java 3D's built-in Wavefront material table (MTL text) from ``j3dutils.jar``: the string
    constant of ``DefaultMaterials`` (a CONSTANT_Utf8 entry: tag 1, big-endian u2 length, bytes)."""
    with zipfile.ZipFile(j3dutils_jar) as z:
        data = z.read(_J3D_MATERIALS)
    start = data.find(b"newmtl ")
    if start < 3 or data[start - 3] != 1:
        raise ValueError(f"{j3dutils_jar}: no material table in {_J3D_MATERIALS}")
    length = int.from_bytes(data[start - 2:start], "big")
    return data[start:start + length].decode("utf-8")


def _add_mtllib(obj: Path) -> None:
    """Point an OBJ without an ``mtllib`` line at ``default.mtl``."""
    text = obj.read_bytes()
    if b"\nmtllib " not in b"\n" + text:
        obj.write_bytes(f"mtllib {MTL_NAME}\n".encode() + text)


def unpack_default_catalog(jar: Path, dest: Path | None = None, materials_jar: Path | None = None) -> Path:
    """Copy the default catalog and its models out of ``sweethome3d.jar`` into
    ``dest/SweetHome3D-default`` (idempotent); returns ``dest``. The catalog's model paths
    (``/com/eteks/.../bed.obj``) stay valid relative to the library folder. ``materials_jar``
    (``j3dutils.jar``): write its material table as ``default.mtl`` and point the OBJs at it."""
    dest = Path(dest) if dest is not None else validation_furniture_dir()
    lib = dest / VALIDATION_LIBRARY
    if (lib / _CATALOG_NAME).exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(jar) as z:
            names = set(z.namelist())
            if _JAR_CATALOG not in names:
                raise FileNotFoundError(f"{jar}: no {_JAR_CATALOG} (not Sweet Home 3D's jar?)")
            (tmp / _CATALOG_NAME).write_bytes(z.read(_JAR_CATALOG))
            for n in names:
                if n.startswith(_JAR_MODELS) and not n.endswith("/") and ".." not in Path(n).parts:
                    target = tmp / n
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(n))
        if materials_jar is not None:
            models = tmp / _JAR_MODELS
            (models / MTL_NAME).write_text(java3d_default_materials(materials_jar))
            for obj in models.glob("*.obj"):
                _add_mtllib(obj)
        os.rename(tmp, lib)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.scenegen.validation_library", description=__doc__.split("\n\n")[0])
    p.add_argument("--jar", type=Path, default=Path("/usr/share/sweethome3d/sweethome3d.jar"),
                   help="sweethome3d.jar (from the Debian package sweethome3d)")
    p.add_argument("--materials-jar", type=Path, default=Path("/usr/share/java/j3dutils.jar"),
                   help="j3dutils.jar (Debian package libjava3d-java): the OBJs' material colours")
    p.add_argument("--dest", type=Path, default=None, help="default: <cache>/validation_furniture")
    a = p.parse_args(argv)
    if not a.jar.exists():
        p.error(f"{a.jar} not found: run `make validation-furniture` (unpacks the Debian package sweethome3d)")
    if not a.materials_jar.exists():
        p.error(f"{a.materials_jar} not found: run `make validation-furniture` (unpacks libjava3d-java too)")
    dest = unpack_default_catalog(a.jar, a.dest, a.materials_jar)
    entries = load_library(VALIDATION_LIBRARY, dest)
    print(f"{len(entries)} models in {dest / VALIDATION_LIBRARY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
