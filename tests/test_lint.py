"""`python3 tasks.py lint` stays green: each of its linters (ruff check, ruff format --check, mypy
strict, the import contracts), run from the suite's own environment."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _linters() -> tuple[tuple[str, ...], ...]:
    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    linters: tuple[tuple[str, ...], ...] = tasks.LINTERS
    return linters


@pytest.mark.slow  # each linter runs as a subprocess
@pytest.mark.parametrize("command", _linters(), ids=" ".join)
def test_lint(command: tuple[str, ...]) -> None:
    tool, *args = command
    exe = BIN / tool if (BIN / tool).exists() else shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (it comes with the test extras)")
    done = subprocess.run(
        [str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


@pytest.mark.slow  # tasks.py as a subprocess
def test_tasks_help_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tasks.py"), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "python3 tasks.py lint" in done.stdout


def test_no_module_of_the_packages_is_over_400_lines() -> None:
    """A module that long does two jobs (house style, "Rooms")."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in ("contract", "producer", "worker")
        for path in (ROOT / package).rglob("*.py")
    }
    assert sizes, "no modules found"
    assert {name: n for name, n in sizes.items() if n > 400} == {}
