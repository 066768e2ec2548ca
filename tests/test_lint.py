"""`python3 tasks.py lint` stays green: ruff, and mypy --strict on the packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("tool", "args"),
    [("ruff", ["check", "contract", "worker", "producer", "bench", "tests", "tasks.py"]), ("mypy", [])],
)
def test_lint(tool: str, args: list[str]) -> None:
    exe = BIN / tool if (BIN / tool).exists() else shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (it comes with the test extras)")
    done = subprocess.run(
        [str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
