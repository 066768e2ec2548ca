"""The mistakes a new user makes in the first hour, each answered by its console script with the
documented exit code and one line that names the problem and the fix (never a traceback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from psycopg.conninfo import make_conninfo

from contract.exits import ExitCode
from tests.conftest import Services
from tests.ingest.helpers import drain, settings
from worker.dev.scratch import with_search_path

pytestmark = pytest.mark.acceptance

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
AWAY_DATABASE = "postgresql://postgres@127.0.0.1:1/nothing"  # refused at once
AWAY_REDIS = "redis://127.0.0.1:1/0"


def _run(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, list[str]]:
    """Exit status and stderr's lines (a script's own log lines left out: they are not its answer)."""
    done = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if " WARNING " not in line and " INFO " not in line]
    return done.returncode, lines


def _one_line(lines: list[str], *says: str) -> str:
    assert len(lines) == 1, lines
    for text in says:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def test_a_port_that_is_not_one() -> None:
    code, lines = _run("metrics-api", "--port", "99999")
    assert code == ExitCode.USAGE
    _one_line(lines, "--port", "'99999' is not a port", "1 to 65535", "metrics-api --help")


def test_a_port_already_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, lines = _run("metrics-api", "--port", str(port))
    assert code == ExitCode.USAGE
    _one_line(lines, f"cannot listen on 127.0.0.1:{port}", "Address already in use", "choose another")


@pytest.mark.parametrize(
    "argv",
    [("metrics-worker", "query", "summary"), ("metrics-worker", "schema"), ("metrics-worker", "prune")],
)
def test_a_database_that_cannot_be_reached(argv: tuple[str, ...]) -> None:
    code, lines = _run(*argv, env={"DATABASE_URL": AWAY_DATABASE})
    assert code == ExitCode.UNAVAILABLE
    _one_line(lines, "PostgreSQL", "Connection refused", "DATABASE_URL")


@pytest.mark.parametrize("job", ["prune", "reconcile"])
def test_a_database_without_the_tables_says_to_create_them(services: Services, job: str) -> None:
    url = with_search_path(services.database_url, "no_such_schema_here")
    code, lines = _run("metrics-worker", job, env={"DATABASE_URL": url, "REDIS_URL": services.redis_url})
    assert code == ExitCode.FAILED
    _one_line(lines, "none of the tables", "search_path no_such_schema_here", "`metrics-worker schema`")
    code, lines = _run("metrics-worker", "query", "sessions", env={"DATABASE_URL": url})
    assert code == ExitCode.FAILED
    _one_line(lines, "none of the tables", "`metrics-worker schema`")


@pytest.mark.parametrize(
    "argv", [("metrics-worker", "run"), ("metrics-producer", "publish", "-")], ids=["worker", "producer"]
)
def test_a_bad_variable_is_named(argv: tuple[str, ...]) -> None:
    code, lines = _run(*argv, env={"METRICS_BATCH_SIZE": "-3"})
    assert code == ExitCode.USAGE
    _one_line(lines, "METRICS_BATCH_SIZE", "must be at least 1, got -3")


def test_a_command_checks_only_the_settings_it_uses(redis_url: str) -> None:
    """status reads no batch size: a bad one does not stop it. The variable it does use is named
    with its flag, the one this command has."""
    env = {"REDIS_URL": redis_url, "METRICS_BATCH_SIZE": "0", "METRICS_RETENTION": "1h"}
    code, lines = _run("metrics-worker", "status", "--json", env=env)
    assert code == 0 and lines == []  # a one-shot command: its answer only, no start-up log line
    code, lines = _run("metrics-worker", "status", env={**env, "METRICS_SHARDS": "0"})
    assert code == ExitCode.USAGE
    _one_line(lines, "METRICS_SHARDS (--shards): must be at least 1, got 0")


def test_a_short_dedupe_window_is_refused_before_prune_connects() -> None:
    code, lines = _run(
        "metrics-worker", "prune", env={"DATABASE_URL": AWAY_DATABASE, "METRICS_DEDUPE_WINDOW": "1h"}
    )
    assert code == ExitCode.USAGE  # not 3: nothing was tried
    _one_line(lines, "METRICS_DEDUPE_WINDOW (--dedupe-window): 1h is shorter than the minimum, 1d")


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port where something accepts connections and never says a word (not PostgreSQL)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize("argv", [("query", "sessions"), ("schema",)], ids=["query", "schema"])
def test_a_url_that_reaches_something_else_fails_within_the_connect_timeout(
    silent_listener: int, argv: tuple[str, ...]
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_listener}/metrics"
    started = time.monotonic()
    code, lines = _run("metrics-worker", *argv, "--connect-timeout", "2s", env={"DATABASE_URL": url})
    took = time.monotonic() - started
    assert code == ExitCode.UNAVAILABLE
    assert took < 2 + 8, took  # the timeout, plus a process start on a busy machine; never libpq's 130 s
    _one_line(lines, f"cannot connect to 127.0.0.1:{silent_listener}", "no PostgreSQL answer within 2s")


@pytest.mark.parametrize("argv", [("query", "sessions"), ("run", "--burst")], ids=["query", "run"])
def test_a_database_that_does_not_exist_says_how_to_create_it(
    services: Services, key_prefix: str, argv: tuple[str, ...]
) -> None:
    url = make_conninfo(services.database_url, dbname="no_such_database_here")
    env = {"DATABASE_URL": url, "REDIS_URL": services.redis_url, "METRICS_STREAM": f"{key_prefix}:events"}
    code, lines = _run("metrics-worker", *argv, env=env)
    assert code == ExitCode.USAGE  # a mistake in the command, not "retry later"
    _one_line(lines, 'database "no_such_database_here" does not exist', "createdb no_such_database_here")


@pytest.mark.parametrize("argv", [("schema",), ("query", "summary")])
def test_a_url_without_a_scheme_is_refused_in_one_line(argv: tuple[str, ...]) -> None:
    code, lines = _run("metrics-worker", *argv, env={"DATABASE_URL": "127.0.0.1:5432/test"})
    assert code == ExitCode.USAGE
    _one_line(lines, "DATABASE_URL (--database-url): '127.0.0.1:5432/test' is not a PostgreSQL URL")


def test_durations_of_the_worker_take_units(services: Services, key_prefix: str) -> None:
    env = {"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url, "METRICS_BLOCK_MS": "1s"}
    code, lines = _run(
        "metrics-worker", "run", "--burst", "--block-ms", "2s", "--claim-idle-ms", "500ms",
        "--stream", f"{key_prefix}:events", env=env,
    )  # fmt: skip
    assert code == 0, lines
    code, lines = _run("metrics-worker", "run", "--block-ms", "2 weeks")
    assert code == ExitCode.USAGE
    _one_line(lines, "--block-ms", "'2 weeks' is not a duration")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("prune", "--older-than", "90"), "'90' has no unit; write 90s, 90m, 90h or 90d"),
        (
            ("prune", "--older-than", "12h"),
            "METRICS_RETENTION (--older-than): 12h is shorter than the minimum, 1d",
        ),
        (("reconcile", "--grace", "45s"), "45s is shorter than the minimum, 1m"),
        (("prune", "--dedupe-window", "30m"), "30m is shorter than the minimum, 1d"),
    ],
)
def test_durations_are_written_as_people_write_them(
    services: Services, argv: tuple[str, ...], says: str
) -> None:
    code, lines = _run("metrics-worker", *argv, env={"DATABASE_URL": services.database_url})
    assert code == ExitCode.USAGE
    line = _one_line(lines, says)
    assert "day," not in line and "0:0" not in line  # no Python timedelta


@pytest.mark.parametrize(
    ("env", "server", "variable"),
    [
        ({"REDIS_URL": AWAY_REDIS}, "Redis", "REDIS_URL"),
        ({"DATABASE_URL": AWAY_DATABASE}, "PostgreSQL", "DATABASE_URL"),
    ],
)
def test_a_burst_run_gives_up_on_a_server_away(
    services: Services, key_prefix: str, env: dict[str, str], server: str, variable: str
) -> None:
    base = {"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
    started = time.monotonic()
    code, lines = _run(
        "metrics-worker", "run", "--burst", "--give-up-after", "2s", "--stream", f"{key_prefix}:events",
        env={**base, **env},
    )  # fmt: skip
    assert code == ExitCode.UNAVAILABLE
    assert time.monotonic() - started < 30
    _one_line(lines, f"{server}: unreachable for", "giving up (--give-up-after)", variable)


def test_simulate_with_redis_away_exits_like_publish(tmp_path: Path) -> None:
    env = {"REDIS_URL": AWAY_REDIS, "METRICS_SPOOL_DIR": str(tmp_path)}
    code, lines = _run("metrics-producer", "simulate", "--sessions", "2", "--no-progress", env=env)
    assert code == ExitCode.UNAVAILABLE
    _one_line(lines, "Redis unreachable", "REDIS_URL", f"wait in {tmp_path}")  # as publish says it


def test_dead_letters_are_listed_under_a_header(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    s = settings(db_url, redis_url, key_prefix)
    redis_client.xadd(s.stream, {"event": "not json"})
    drain(s)
    env = {"REDIS_URL": redis_url, "COLUMNS": "80"}
    done = subprocess.run(
        [str(BIN / "metrics-worker"), "dlq", "list", "--stream", s.stream],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"1 dead letters in {s.stream}:dead")
    header = " ".join(lines[lines.index(next(x for x in lines if x.startswith("┏"))) + 1 : lines.index(
        next(x for x in lines if x.startswith("┡")))])  # fmt: skip
    assert "id" in header and "reason" in header and "deliveries" in header
    assert max(len(line) for line in lines) <= 80
    assert "│ inval" in done.stdout  # the reason, its end cut before any other column goes


def test_help_of_every_command_exits_0_and_describes_it() -> None:
    for argv in (
        ("metrics-worker",), ("metrics-worker", "run"), ("metrics-worker", "schema"),
        ("metrics-worker", "status"), ("metrics-worker", "dlq", "list"), ("metrics-worker", "dlq", "show"),
        ("metrics-worker", "query", "by-model"), ("metrics-producer", "simulate"), ("metrics-api",),
        ("metrics-worker", "reconcile"), ("metrics-worker", "prune"), ("metrics-worker", "scheduler-url"),
        ("metrics-worker", "fold"), ("metrics-worker", "dlq", "redrive"), ("metrics-worker", "dlq", "purge"),
        ("metrics-producer", "publish"),
    ):  # fmt: skip
        done = subprocess.run(
            [str(BIN / argv[0]), *argv[1:], "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0 and "usage:" in done.stdout, argv
    tasks = subprocess.run(
        [sys.executable, str(ROOT / "tasks.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tasks.returncode == 0 and "python3 tasks.py demo" in tasks.stdout
