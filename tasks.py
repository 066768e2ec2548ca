#!/usr/bin/env python3
"""The project's one entry point; needs nothing but Python 3.11+.

    python3 tasks.py test [pytest args]   create .venv if needed, install, run the suite
    python3 tasks.py test --fast [args]   the unit tier only: no server, no subprocess (-m "not slow")
    python3 tasks.py demo [demo args]     the whole pipeline for half a minute (python -m worker.dev.demo;
                                          --serve keeps it up until Ctrl-C; --help for the rest)
    python3 tasks.py bench                every benchmark (bench/)
    python3 tasks.py lint                 ruff check, ruff format --check, mypy strict, lint-imports
    python3 tasks.py --help               this text

The virtual environment is (re)installed when pyproject.toml is newer than its stamp.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"

#: What ``lint`` runs, with the venv's tools (they come with the test extra); tests/test_lint.py
#: runs the same list.
LINTERS: tuple[tuple[str, ...], ...] = (
    ("ruff", "check", "."),
    ("ruff", "format", "--check", "."),
    ("mypy",),  # strict, on the packages: [tool.mypy] in pyproject.toml
    ("lint-imports",),  # the rooms' import rules: [tool.importlinter] in pyproject.toml
)


def ensure_venv() -> None:
    if STAMP.exists() and STAMP.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime:
        return
    if not PY.exists():
        print("tasks: creating .venv", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("tasks: installing the project and its test dependencies into .venv", file=sys.stderr)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"], check=True)
    STAMP.touch()


def _let_the_child_answer(signum: int, frame: object) -> None:
    """Ctrl-C reaches the child as well (the terminal signals the whole foreground group): the
    child decides what it means (the demo cleans up, pytest reports); this process waits for it."""


def run(*argv: str) -> int:
    # A handler, not SIG_IGN: an ignored SIGINT would be inherited by the child, a handler is not.
    previous = signal.signal(signal.SIGINT, _let_the_child_answer)
    try:
        code = subprocess.run(argv, cwd=ROOT, check=False).returncode
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + its number


def pytest_args(args: list[str]) -> list[str]:
    """``test``'s arguments for pytest: ``--fast`` is the unit tier, ``-m "not slow"`` (tests/conftest.py
    marks slow whatever needs a server or a subprocess)."""
    if "--fast" not in args:
        return args
    return ["-m", "not slow", *(a for a in args if a != "--fast")]


def main(args: list[str]) -> int:
    if args and args[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    if not args or args[0] not in {"test", "demo", "bench", "lint"}:
        print(__doc__, file=sys.stderr)
        return 2
    task, rest = args[0], args[1:]
    ensure_venv()
    if task == "test":
        return run(str(PY), "-m", "pytest", *pytest_args(rest))
    if task == "demo":
        return run(str(PY), "-m", "worker.dev.demo", *rest)
    if task == "bench":
        for module in (
            "bench.throughput",
            "bench.producer_bench",
            "bench.otlp",
            "bench.decode_bench",
            "bench.read_bench",
            "bench.dashboard_bench",
            "bench.latency",
            "bench.drills",
        ):
            code = run(str(PY), "-m", module)
            if code:
                return code
        return 0
    failed = 0
    for tool, *rest in LINTERS:  # every one, so that one run shows every kind of finding
        failed = run(str(BIN / tool), *rest) or failed
    return failed


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # while installing: pip has stopped; nothing to add to its words
        sys.exit(130)
