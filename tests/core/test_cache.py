"""The one cache-folder rule every module uses (core/cache.py)."""

from pathlib import Path

from ov3r.core.scenegen.suite import cache_root
from ov3r.core.cache import cache_dir
from ov3r.core.models.pretrained.mobile_sam import default_path


def test_cache_dir_follows_ov3r_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("OV3R_CACHE", str(tmp_path / "c d"))
    assert cache_dir() == tmp_path / "c d"
    assert cache_dir("bench", "x") == tmp_path / "c d" / "bench" / "x"
    # the modules that name a folder under it resolve through it at call time
    assert cache_root() == tmp_path / "c d" / "bench"
    assert default_path() == tmp_path / "c d" / "weights" / "mobile_sam.pt"
    assert not (tmp_path / "c d").exists()  # naming a folder does not create it


def test_cache_dir_defaults_to_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in (None, ""):
        if value is None:
            monkeypatch.delenv("OV3R_CACHE", raising=False)
        else:
            monkeypatch.setenv("OV3R_CACHE", value)
        assert cache_dir("fixtures") == Path(tmp_path) / ".cache" / "ov3r" / "fixtures"
