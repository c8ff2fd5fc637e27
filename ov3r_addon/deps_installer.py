"""Managed worker environment: ``python -m venv <user>/venv`` + ``pip install -r
worker_requirements.txt`` in a subprocess, never blocking Blender.

``DepsInstaller.start()`` runs its steps one after another in a background thread; the UI
polls ``progress`` / ``message`` (a timer) and everything the commands print goes to
``log_path``. ``wait()`` runs it to the end (scripts, tests, background mode).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("worker_requirements.txt")
# The Pythons that supported Blenders bundle (4.2-5.0: 3.11, 5.1-5.3: 3.13); the worker's requirements
# are checked to have wheels for exactly these (tests/addon/test_worker_requirements.py).
WORKER_PYTHONS = ((3, 11), (3, 13))
_PROBE = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"
# What pip prints when the network, not the request, failed: such a step is worth running again.
_TRANSIENT = re.compile(r"ConnectionError|ConnectTimeout|ReadTimeout|Read timed out|timed out|Max retries exceeded|"
                        r"Temporary failure in name resolution|Connection (reset|refused|aborted)|"
                        r"HTTP error (429|5\d\d)|\b(429|50[0234]) (Client|Server) Error|IncompleteRead|"
                        r"THESE PACKAGES DO NOT MATCH THE HASHES", re.IGNORECASE)


class BasePythonError(RuntimeError):
    """No interpreter can build the worker environment; the message names each one tried and why."""


def base_python_problem(python: str, timeout: float = 60.0) -> str:
    """"" when ``python`` can make the worker's venv (a supported version, with venv and ensurepip),
    else why not."""
    if not python or not os.path.isfile(python):
        return "not found"
    try:
        res = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, env=_env(),
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run it ({exc.__class__.__name__}: {exc})"
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        return f"it cannot make a virtual environment ({last})"
    version = res.stdout.strip()
    supported = ", ".join("%d.%d" % v for v in WORKER_PYTHONS)
    if version not in {"%d.%d" % v for v in WORKER_PYTHONS}:
        return f"it is Python {version}; the worker's packages are checked for Python {supported}"
    return ""


def choose_base_python(blender_python: str, fallback: str = "") -> str:
    """The interpreter that makes the worker venv: Blender's own when suitable, else ``fallback``
    (the preference "Fallback Python"); BasePythonError naming both when neither is."""
    tried = []
    for role, python in (("Blender's Python", blender_python), ("the Fallback Python", fallback)):
        if not python:
            continue
        problem = base_python_problem(python)
        if not problem:
            return python
        tried.append(f"{role} ({python}): {problem}")
    if not fallback:
        tried.append("no Fallback Python is set in the preferences")
    supported = " or ".join("%d.%d" % v for v in WORKER_PYTHONS)
    raise BasePythonError("No Python can build the Ov3R worker environment. " + "; ".join(tried)
                          + f". Set 'Fallback Python' in the add-on's preferences to a Python {supported}.")


def venv_python(venv_dir: str | os.PathLike) -> Path:
    d = Path(venv_dir)
    return d / "Scripts" / "python.exe" if os.name == "nt" else d / "bin" / "python"


def default_steps(venv_dir: str, base_python: str | None = None,
                  requirements: str | os.PathLike = REQUIREMENTS, dry_run: bool = False) -> list[tuple[str, list[str]]]:
    """(label, command) of each step of the installation. ``dry_run`` resolves every package
    (pip's full resolution, metadata only) without installing one."""
    py = str(venv_python(venv_dir))
    # Wheels only: an artist's machine has no compiler, and a release whose wheels are still uploading
    # must not be built from its source archive.
    install = [py, "-m", "pip", "install", "--progress-bar", "off", "--retries", "10", "--only-binary", ":all:",
               "-r", str(requirements)]
    if dry_run:
        install[4:4] = ["--dry-run", "--ignore-installed"]
    return [
        ("Creating the environment", [base_python or sys.executable, "-m", "venv", str(venv_dir)]),
        ("Updating pip", [py, "-m", "pip", "install", "--retries", "10", "--upgrade", "pip"]),
        ("Resolving packages" if dry_run else "Installing packages", install),
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)  # Blender's own; never leak into another interpreter
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class DepsInstaller:
    def __init__(self, steps: list[tuple[str, list[str]]], log_path: str | os.PathLike, attempts: int = 3):
        self.steps = steps
        self.attempts = attempts  # runs of a step whose failure reads as a network failure
        self.log_path = Path(log_path)
        self.step = 0
        self.lines = 0
        self.message = "waiting"
        self.error = ""
        self.network_failed = False  # the failed step's output read as a network failure, every try
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
                for attempt in range(1, self.attempts + 1):
                    code, errors, transient = self._run_step(label, cmd, log)
                    if code == 0 or self._cancelled or not transient or attempt == self.attempts:
                        break
                    log.write(f"=== the network failed; trying '{label}' again ({attempt + 1} of {self.attempts})\n")
                    time.sleep(2.0 * attempt)
                if self._cancelled:
                    self.error = "cancelled"
                    break
                if code != 0:
                    self.network_failed = transient
                    why = f": {errors[-1][:300]}" if errors else ""
                    self.error = f"{label} failed (exit code {code}){why}; see {self.log_path}"
                    break
            else:
                self.done, self.step, self.message = True, len(self.steps), "Dependencies installed"
            log.write(f"=== {'ERROR: ' + self.error if self.error else 'done'}\n")

    def _run_step(self, label: str, cmd: list[str], log) -> tuple[int, list[str], bool]:
        """Runs one command, its output into ``log``. Returns (exit code, its "ERROR" lines, whether
        its output reads as a network failure)."""
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        try:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=_env(), text=True, errors="replace")
        except OSError as exc:
            return 1, [str(exc)], False
        assert self._proc.stdout is not None
        errors: list[str] = []
        transient = False
        for line in self._proc.stdout:
            log.write(line)
            self.lines += 1
            if line.startswith(("Collecting", "Installing", "Successfully")):
                self.message = f"{label}: {line.strip()[:80]}"
            if line.startswith("ERROR"):
                errors.append(line.strip())
            transient = transient or bool(_TRANSIENT.search(line))
        return self._proc.wait(), errors, transient

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
