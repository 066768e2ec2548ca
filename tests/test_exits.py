"""Errors carry their exit code (contract/exits.py), and every console script reports them the same
way: the same failure is the same exit code whichever command met it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from contract.connect import ClusterUnavailable, RedisRefused, RedisUnavailable, redis_failure
from contract.exits import CommandError, ExitCode, NotFound, report_for, run
from worker.errors import (
    DatabaseMissing,
    PermanentError,
    PostgresError,
    TablesMissing,
    TransientError,
    Unreachable,
    postgres_failure,
)
from worker.read.queries import QueryError
from worker.schema import SchemaMissing

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
NOWHERE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
NOWHERE_DATABASE = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("no such session"), ExitCode.FAILED),
        (SchemaMissing("none of the tables"), ExitCode.FAILED),
        (QueryError("end_date before start_date"), ExitCode.USAGE),
        (ValueError("METRICS_SHARDS: must be at least 1"), ExitCode.USAGE),
        (PermanentError("out of range"), ExitCode.FAILED),
        (TransientError("deadlock"), ExitCode.UNAVAILABLE),
        (Unreachable("cannot connect to db:5432"), ExitCode.UNAVAILABLE),
        (DatabaseMissing('database "m" does not exist'), ExitCode.USAGE),
        (TablesMissing('relation "sessions" does not exist'), ExitCode.FAILED),
        (RedisRefused("WRONGTYPE"), ExitCode.USAGE),
        (RedisUnavailable("Connection refused"), ExitCode.UNAVAILABLE),
        (ClusterUnavailable("cannot be connected"), ExitCode.UNAVAILABLE),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_every_error_a_script_reports_says_its_own_code(error: Exception, code: ExitCode) -> None:
    report = report_for(error)
    assert report is not None and report.code == code


@pytest.mark.parametrize(
    ("driver_error", "translated"),
    [
        (redis.ResponseError("WRONGTYPE"), RedisRefused),
        (redis.ConnectionError("refused"), RedisUnavailable),
        (redis.exceptions.RedisClusterException("no nodes"), ClusterUnavailable),
        (psycopg.errors.UndefinedTable("relation x does not exist"), TablesMissing),
        (psycopg.OperationalError("server closed the connection"), Unreachable),
        (psycopg.errors.InsufficientPrivilege("permission denied"), PostgresError),
    ],
)
def test_each_drivers_errors_are_translated_in_one_place(
    driver_error: Exception, translated: type[CommandError]
) -> None:
    assert type(postgres_failure(driver_error) or redis_failure(driver_error)) is translated
    assert postgres_failure(ValueError("x")) is None and redis_failure(ValueError("x")) is None


def test_the_contract_names_no_class_of_the_worker() -> None:
    source = (ROOT / "contract" / "exits.py").read_text()
    assert "worker." not in source and "psycopg" not in source.replace("psycopg's", "")


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
    assert report_for(RuntimeError("a bug")) is None
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
        [str(BIN / "metrics-worker"), "status"],
        [str(BIN / "metrics-worker"), "dlq", "list"],
    ],
    ids=["metrics-worker reconcile", "status", "dlq list"],
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
        [str(BIN / "metrics-worker"), "prune"],
    ],
    ids=["schema", "metrics-worker query", "prune"],
)
def test_postgresql_away_is_exit_3_from_every_entry_point(argv: list[str], redis_url: str) -> None:
    done = _exit_code(argv, NOWHERE_DATABASE, redis_url)
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr[-2000:]
    assert "PostgreSQL: " in done.stderr and "(check --database-url / DATABASE_URL)" in done.stderr
    assert "Traceback" not in done.stderr


#: The modules a console script starts in ([project.scripts]), the demo tasks.py runs, and the
#: generators of contract/event.schema.json and contract/conformance.json (no command line: each
#: prints its file).
ENTRY_MODULES = {
    "worker/cli.py",
    "producer/cli.py",
    "worker/read/server.py",
    "producer/otlp/server.py",
    "worker/dev/demo.py",
    "contract/schema.py",
    "contract/conformance.py",
}


def test_no_module_but_the_console_scripts_is_a_main() -> None:
    """One command line per console script: no ``python -m`` side door with its own parser."""
    mains = set()
    for package in ("contract", "worker", "producer"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            if any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body):
                mains.add(str(path.relative_to(ROOT)))
    assert mains == ENTRY_MODULES


@pytest.mark.slow  # python -m, as a subprocess
@pytest.mark.parametrize("module", ["worker.maintenance.cli", "worker.read.cli", "worker.read.api"])
def test_the_old_python_m_entry_points_do_nothing(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "scheduler-url"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == "" and "Traceback" not in done.stderr
