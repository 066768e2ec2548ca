"""The services the suite runs against answer, and the per-test schema holds the seed's tables."""

from __future__ import annotations

import psycopg
import redis


def test_database_has_the_seed_tables(conn: psycopg.Connection) -> None:
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    assert {
        "session_metrics",
        "round_metrics",
        "tool_call_metrics",
        "forward_request_metrics",
        "execute_sync_mismatch_metrics",
    } <= tables


def test_schema_applies_again_and_again(conn: psycopg.Connection) -> None:
    from worker.schema import apply_schema

    apply_schema(conn)
    apply_schema(conn)


def test_redis_answers(redis_client: redis.Redis) -> None:
    assert redis_client.ping()


def test_the_suite_says_first_which_servers_it_uses() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(
        os.environ,
        DATABASE_URL="postgresql://someone:secret@db.example:5433/metrics",
        REDIS_URL="redis://cache.example:6380/2",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_help.py::test_query_names_are_the_readmes"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first == (
        "servers: from the environment, PostgreSQL db.example:5433/metrics (DATABASE_URL), "
        "Redis cache.example:6380/2 (REDIS_URL)"
    )
    assert "secret" not in done.stdout
