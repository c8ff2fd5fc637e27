"""Managed worker environment: ``python -m venv <user>/venv`` + ``pip install -r
worker_requirements.txt`` in a subprocess, never blocking Blender.

``DepsInstaller.start()`` runs its steps one after another in a background thread; the UI
polls ``progress`` / ``message`` (a timer) and everything the commands print goes to
``log_path``. ``wait()`` runs it to the end (scripts, tests, background mode).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("worker_requirements.txt")


def venv_python(venv_dir: str | os.PathLike) -> Path:
    d = Path(venv_dir)
    return d / "Scripts" / "python.exe" if os.name == "nt" else d / "bin" / "python"


def default_steps(venv_dir: str, base_python: str | None = None,
                  requirements: str | os.PathLike = REQUIREMENTS) -> list[tuple[str, list[str]]]:
    """(label, command) of each step of the installation."""
    py = str(venv_python(venv_dir))
    return [
        ("Creating the environment", [base_python or sys.executable, "-m", "venv", str(venv_dir)]),
        ("Updating pip", [py, "-m", "pip", "install", "--upgrade", "pip"]),
        ("Installing packages", [py, "-m", "pip", "install", "--progress-bar", "off", "-r", str(requirements)]),
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)  # Blender's own; never leak into another interpreter
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class DepsInstaller:
    def __init__(self, steps: list[tuple[str, list[str]]], log_path: str | os.PathLike):
        self.steps = steps
        self.log_path = Path(log_path)
        self.step = 0
        self.lines = 0
        self.message = "waiting"
        self.error = ""
        self.done = False
        self._proc: subprocess.Popen | None = None
        self._cancelled = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def progress(self) -> float:
        return 1.0 if self.done else self.step / max(len(self.steps), 1)

    def start(self) -> DepsInstaller:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"=== Ov3R dependency installation {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            for i, (label, cmd) in enumerate(self.steps):
                self.step, self.message = i, label
                log.write(f"$ {' '.join(cmd)}\n")
                log.flush()
                try:
                    self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, env=_env(), text=True, errors="replace")
                except OSError as exc:
                    self.error = f"{label}: {exc}"
                    break
                assert self._proc.stdout is not None
                for line in self._proc.stdout:
                    log.write(line)
                    self.lines += 1
                    if line.startswith(("Collecting", "Installing", "Successfully")):
                        self.message = f"{label}: {line.strip()[:80]}"
                code = self._proc.wait()
                if self._cancelled:
                    self.error = "cancelled"
                    break
                if code != 0:
                    self.error = f"{label} failed (exit code {code}); see {self.log_path}"
                    break
            else:
                self.done, self.step, self.message = True, len(self.steps), "Dependencies installed"
            log.write(f"=== {'ERROR: ' + self.error if self.error else 'done'}\n")

    def cancel(self) -> None:
        self._cancelled = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done


_installer: DepsInstaller | None = None


def active() -> DepsInstaller | None:
    return _installer


def set_active(inst: DepsInstaller | None) -> None:
    global _installer
    _installer = inst
