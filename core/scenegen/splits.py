"""Train / test split of the furniture libraries.

The test split uses only ``BlendSwap-CC-0`` models; training uses every other installed
library and never a model of the test library (checked by id, by model file and by
library name in :func:`check_training_config`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List, Optional, Tuple

from .catalog import TEST_LIBRARY, library_files, load_catalog

__all__ = ["TEST_LIBRARIES", "training_libraries", "test_model_ids", "training_model_ids",
           "check_training_config", "models_per_class"]

TEST_LIBRARIES: Tuple[str, ...] = (TEST_LIBRARY,)


def training_libraries(furniture_dir: Optional[Path] = None) -> Tuple[str, ...]:
    return tuple(n for n in library_files(furniture_dir) if n not in TEST_LIBRARIES)


def test_model_ids(furniture_dir: Optional[Path] = None) -> List[str]:
    return [e.id for e in load_catalog(TEST_LIBRARIES, furniture_dir)]


test_model_ids.__test__ = False  # not a pytest test


def training_model_ids(furniture_dir: Optional[Path] = None) -> List[str]:
    return [e.id for e in load_catalog(training_libraries(furniture_dir), furniture_dir)]


def models_per_class(test: bool, furniture_dir: Optional[Path] = None) -> Counter:
    """Taxonomy-classified models per class in the test library (``test``) or the training libraries."""
    from .taxonomy import classify_entry

    libs = TEST_LIBRARIES if test else training_libraries(furniture_dir)
    return Counter(c for c in (classify_entry(e) for e in load_catalog(libs, furniture_dir)) if c is not None)


def check_training_config(cfg) -> None:
    """Raise ``ValueError`` if a training config could pick a test-library model."""
    bad = set(cfg.libraries) & set(TEST_LIBRARIES)
    if bad:
        raise ValueError(f"training config {cfg.name} uses test libraries {sorted(bad)}")
