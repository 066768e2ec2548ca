"""The suite's own layout: a test module imports helpers, never another test module (importing one
runs its fixtures' module code twice and ties two test files' fates together); ``--fast`` is the
unit tier."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_another_test_module() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found += [
                f"{path.relative_to(TESTS.parent)}: {name}"
                for name in names
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
            ]
    assert found == [], "move what they share into a helpers module"


def test_fast_is_the_tier_without_servers_or_subprocesses(request: pytest.FixtureRequest) -> None:
    spec = importlib.util.spec_from_file_location("tasks", TESTS.parent / "tasks.py")
    assert spec is not None and spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    assert tasks.pytest_args(["--fast", "-q", "tests/read"]) == ["-m", "not slow", "-q", "tests/read"]
    assert tasks.pytest_args(["-q"]) == ["-q"]
    # This test is in that tier: it asks for no server and starts nothing.
    assert request.node.get_closest_marker("slow") is None


def test_a_unit_test_that_starts_python_is_told_to_mark_itself_slow() -> None:
    with pytest.raises(AssertionError, match="is not marked slow"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    # A library's own probe is not the test's doing (croniter asks platform.architecture()).
    assert subprocess.run(["true"], check=False).returncode == 0
