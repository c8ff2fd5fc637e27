"""The validation furniture library (core.scenegen.validation_library): Sweet Home 3D's default catalog
unpacked from its jar, read like any library, and kept out of the training and test splits."""

import zipfile

import pytest

from ov3r.core.scenegen.catalog import extract_model, load_library
from ov3r.core.scenegen.validation_library import (MTL_NAME, VALIDATION_LIBRARY, java3d_default_materials, main,
                                                unpack_default_catalog)

_CATALOG = """# a two-model excerpt in the default catalog's format
id#1=eTeks#chair
name#1=Chair
category#1=Living room
model#1=/com/eteks/sweethome3d/io/resources/chair.obj
width#1=42
depth#1=51
height#1=90
id#2=eTeks#aquarium
name#2=Aquarium
category#2=Living room
model#2=/com/eteks/sweethome3d/io/resources/aquarium.obj
"""


def _jar(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("com/eteks/sweethome3d/io/DefaultFurnitureCatalog.properties", _CATALOG)
        z.writestr("com/eteks/sweethome3d/io/resources/chair.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        z.writestr("com/eteks/sweethome3d/io/resources/aquarium.obj", "v 0 0 0\n")
        z.writestr("com/eteks/sweethome3d/swing/resources/icons/x.png", b"not a model")
    return path


def test_the_jar_unpacks_into_a_library_the_catalog_reads(tmp_path):
    dest = unpack_default_catalog(_jar(tmp_path / "sweethome3d.jar"), tmp_path / "furniture")
    entries = load_library(VALIDATION_LIBRARY, dest)
    assert [e.name for e in entries] == ["Chair", "Aquarium"] and entries[0].width == 42
    obj = extract_model(entries[0], tmp_path / "models", dest)
    assert obj.read_text().startswith("v 0 0 0") and obj.name == "chair.obj"
    # a second extraction needs no library (render processes only read the extracted files)
    assert extract_model(entries[0], tmp_path / "models", tmp_path / "nowhere") == obj
    assert not (dest / VALIDATION_LIBRARY / "com/eteks/sweethome3d/swing").exists()  # models only
    assert unpack_default_catalog(tmp_path / "missing.jar", dest) == dest  # idempotent: already there


_MTL = "newmtl amber\nKa 0.0531 0.0531 0.0531\nKd 0.5755 0.2678 0.0000\nillum 2\nnewmtl white\nKd 1 1 1\n"


def _j3dutils(path):
    """A jar whose DefaultMaterials.class holds the table as a class file does: a CONSTANT_Utf8 entry."""
    body = _MTL.encode()
    cls = b"\xca\xfe\xba\xbe\x00\x00\x00\x31\x00\x10" + b"\x01" + len(body).to_bytes(2, "big") + body + b"\x07\x00\x02"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("com/sun/j3d/loaders/objectfile/DefaultMaterials.class", cls)
    return path


def test_the_objs_get_java3d_s_material_table(tmp_path):
    j3d = _j3dutils(tmp_path / "j3dutils.jar")
    assert java3d_default_materials(j3d) == _MTL  # exactly the constant, not the bytes after it
    dest = unpack_default_catalog(_jar(tmp_path / "sweethome3d.jar"), tmp_path / "furniture", j3d)
    models = dest / VALIDATION_LIBRARY / "com/eteks/sweethome3d/io/resources"
    assert (models / MTL_NAME).read_text() == _MTL
    assert (models / "chair.obj").read_text().startswith(f"mtllib {MTL_NAME}\nv 0 0 0")
    empty = tmp_path / "empty.jar"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("com/sun/j3d/loaders/objectfile/DefaultMaterials.class", b"\xca\xfe\xba\xbe no table")
    with pytest.raises(ValueError, match="no material table"):
        java3d_default_materials(empty)


def test_not_a_sweet_home_jar_is_a_clear_error(tmp_path):
    bad = tmp_path / "other.jar"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("x.txt", "x")
    with pytest.raises(FileNotFoundError, match="DefaultFurnitureCatalog"):
        unpack_default_catalog(bad, tmp_path / "furniture")
    assert not (tmp_path / "furniture" / VALIDATION_LIBRARY).exists()
    with pytest.raises(SystemExit):
        main(["--jar", str(tmp_path / "missing.jar"), "--dest", str(tmp_path / "f")])


def test_the_validation_split_is_neither_training_nor_test(tmp_path, monkeypatch):
    from ov3r.core.scenegen.splits import TEST_LIBRARIES, training_libraries
    from ov3r.core.train.compact_data import select_entries

    monkeypatch.setenv("OV3R_CACHE", str(tmp_path))
    unpack_default_catalog(_jar(tmp_path / "sweethome3d.jar"))  # into $OV3R_CACHE/validation_furniture
    val = select_entries("validation")
    assert [e.name for e in val] == ["Chair"]  # the aquarium has no taxonomy class
    assert VALIDATION_LIBRARY not in training_libraries() and VALIDATION_LIBRARY not in TEST_LIBRARIES
