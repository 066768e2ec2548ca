"""One table from error class to exit code (contract/exits.py), and every console script uses it:
the same failure is the same exit code whichever entry point met it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contract.exits import EXIT_CODES, ExitCode, rule_for, run

BIN = Path(sys.executable).parent
NOWHERE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
NOWHERE_DATABASE = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"


def test_every_rule_names_an_exception_class_and_none_is_hidden_by_an_earlier_one() -> None:
    classes = []
    for rule in EXIT_CODES:
        cls = getattr(importlib.import_module(rule.module), rule.name)
        assert isinstance(cls, type) and issubclass(cls, BaseException), rule
        for earlier in classes:
            assert not issubclass(cls, earlier), f"{rule.name} is caught by {earlier.__name__} first"
        classes.append(cls)


def test_an_error_of_the_table_is_one_line_and_its_code_anything_else_keeps_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refuse() -> int:
        raise ValueError("METRICS_SHARDS: 'two' is not a whole number\n  (from the environment)")

    assert run("prog", refuse) == ExitCode.USAGE
    assert (
        capsys.readouterr().err
        == "prog: METRICS_SHARDS: 'two' is not a whole number (from the environment)\n"
    )
    assert rule_for(RuntimeError("a bug")) is None
    with pytest.raises(RuntimeError):
        run("prog", lambda: 1 // 0 if False else _raise(RuntimeError("a bug")))


def _raise(exc: Exception) -> int:
    raise exc


def _exit_code(argv: list[str], db_url: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "METRICS_STREAM": "exits:events"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "argv",
    [
        [str(BIN / "metrics-worker"), "reconcile"],
        [sys.executable, "-m", "worker.maintenance.cli", "reconcile"],
        [str(BIN / "metrics-worker"), "status"],
        [str(BIN / "metrics-worker"), "dlq", "list"],
    ],
    ids=["metrics-worker reconcile", "python -m worker.maintenance.cli", "status", "dlq list"],
)
def test_redis_away_is_exit_3_from_every_entry_point(argv: list[str], db_url: str) -> None:
    done = _exit_code(argv, db_url, NOWHERE_REDIS)
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr[-2000:]
    assert "Redis: " in done.stderr and "(check --redis-url / REDIS_URL)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [str(BIN / "metrics-worker"), "schema"],
        [str(BIN / "metrics-worker"), "query", "summary"],
        [sys.executable, "-m", "worker.read.cli", "summary"],
        [str(BIN / "metrics-worker"), "prune"],
        [sys.executable, "-m", "worker.maintenance.cli", "prune"],
    ],
    ids=["schema", "metrics-worker query", "python -m worker.read.cli", "prune", "maintenance prune"],
)
def test_postgresql_away_is_exit_3_from_every_entry_point(argv: list[str], redis_url: str) -> None:
    done = _exit_code(argv, NOWHERE_DATABASE, redis_url)
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr[-2000:]
    assert "PostgreSQL: " in done.stderr and "(check --database-url / DATABASE_URL)" in done.stderr
    assert "Traceback" not in done.stderr
