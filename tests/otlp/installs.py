"""The real OpenTelemetry clients the tests of tests/otlp drive, installed on first use:

- Python: a virtual environment of their own, ``.venv-otel`` at the repository's root (their pins,
  tests/otlp/clients/requirements.txt, need not agree with the project's protobuf or httpx), from
  the package registry with pip; a changed pin reinstalls it (the pins' digest is its stamp);
- Node.js: tests/otlp/node/node_modules, from the npm registry (``npm install``, failing fast when the
  registry does not answer).

When the registry cannot be reached the test fails, saying so: CI (.ci/run) runs the suite on
machines that reach it, and a silent skip would hide that the clients were never driven.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).resolve().parent / "clients"
PINS = CLIENTS / "requirements.txt"
NODE = Path(__file__).resolve().parent / "node"
VENV = ROOT / ".venv-otel"
STAMP = VENV / ".pins-sha256"
PY = VENV / "bin" / "python"
#: A registry that does not answer fails the install in a minute, not pip's default retries.
PIP_FAIL_FAST = ("--retries", "1", "--timeout", "60", "--disable-pip-version-check")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer at a time (two pytest runs on one clone share the folder)."""
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pins_digest(pins: Path = PINS) -> str:
    """The pins file and the interpreter: either changed, the venv is made anew."""
    return hashlib.sha256(pins.read_bytes() + sys.version.encode()).hexdigest()


@functools.cache
def client_python() -> Path:
    """The interpreter of the clients' venv, installed from the pins if it is not already."""
    with _locked(ROOT / ".venv-otel.lock"):
        if PY.exists() and STAMP.exists() and STAMP.read_text() == pins_digest():
            return PY
        install(VENV, PINS)
        STAMP.write_text(pins_digest())
        return PY


def install(folder: Path, pins: Path, env: dict[str, str] | None = None) -> float:
    """A fresh venv in ``folder`` with ``pins`` installed by pip; the seconds it took. Fails the
    test, naming the pins, the folder and pip's complaint, when pip cannot install them."""
    began = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    done = subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *PIP_FAIL_FAST, "-r", str(pins)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if done.returncode != 0:
        pytest.fail(
            f"installing the OpenTelemetry clients ({pins.name}) into {folder} failed: the package "
            "registry must be reachable (the suite installs them on first use, CI included; rerun "
            f"once it answers). pip said:\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return time.monotonic() - began


def node_or_fail() -> None:
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not on PATH: apt-get install nodejs npm (CI's .ci/run does)",
            pytrace=False,
        )


@functools.cache
def node_clients() -> Path:
    """tests/otlp/node with the OpenTelemetry JavaScript SDK its package.json pins (npm install, once
    per run; npm reuses what it already has)."""
    node_or_fail()
    with _locked(ROOT / ".node-otel.lock"):
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--fetch-retries=0", "--fetch-timeout=60000"],
            cwd=NODE,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "NPM_CONFIG_UPDATE_NOTIFIER": "false"},
        )
    if done.returncode != 0:
        pytest.fail(
            f"npm install in {NODE} failed: the npm registry must be reachable (CI installs it on "
            f"first use). npm said:\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return NODE
