"""Training data of the compact encoder never holds a test-library model."""

import pytest

from core.scenegen.catalog import TEST_LIBRARY, load_catalog
from core.scenegen.splits import test_model_ids
from core.train.compact_data import DataConfig, assert_training_split, select_entries

pytestmark = pytest.mark.skipif(not load_catalog(), reason="sweethome3d-furniture not installed")


def test_train_split_excludes_test_library():
    train = select_entries("train")
    assert train and all(e.library != TEST_LIBRARY for e in train)
    assert not {e.id for e in train} & set(test_model_ids())


def test_test_split_is_test_library_with_classes():
    test = select_entries("test")
    assert len(test) >= 80 and all(e.library == TEST_LIBRARY for e in test)
    assert len({__import__("core.scenegen.taxonomy", fromlist=["x"]).classify_entry(e) for e in test}) >= 20


def test_assert_training_split_rejects_test_models():
    with pytest.raises(AssertionError):
        assert_training_split(select_entries("train")[:3] + load_catalog([TEST_LIBRARY])[:1])


def test_config_key_depends_on_settings():
    e = select_entries("test")
    assert DataConfig("test", 8).key(e) != DataConfig("test", 16).key(e)
    assert DataConfig("test", 8).key(e) == DataConfig("test", 8).key(e)
