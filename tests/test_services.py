"""The services the suite runs against answer, and the per-test schema holds the seed's tables."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import redis

from tests.conftest import Services
from worker.dev.scratch import with_search_path
from worker.schema import apply_schema


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


def _shape(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """The schema's tables and indexes, by name."""
    rows = conn.execute(
        "SELECT c.relkind::text, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')"
    ).fetchall()
    return {(kind, name) for kind, name in rows}


def test_schema_applies_again_and_again(services: Services) -> None:
    """On a schema nothing has touched (not the fixture's, which is applied already): the first
    apply creates the tables, the second sees it done, and running the whole file again (force,
    as `metrics-worker schema` does) over the tables and their rows fails on nothing and
    changes nothing."""
    schema = f"fresh_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with psycopg.connect(with_search_path(services.database_url, schema), autocommit=True) as conn:
            assert _shape(conn) == set()
            assert apply_schema(conn) is True
            shape = _shape(conn)
            assert ("r", "session_metrics") in shape and any(kind == "i" for kind, _ in shape)
            conn.execute("INSERT INTO session_metrics (session_id, updated_at) VALUES ('kept', now())")
            assert apply_schema(conn) is False  # this exact file: applied already
            assert apply_schema(conn, force=True) is True
            assert apply_schema(conn, force=True) is True
            assert _shape(conn) == shape
            assert conn.execute("SELECT session_id FROM session_metrics").fetchall() == [("kept",)]
    finally:
        with psycopg.connect(services.database_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_redis_answers(redis_client: redis.Redis) -> None:
    assert redis_client.ping()


@pytest.mark.slow  # a pytest of its own, as a subprocess
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
