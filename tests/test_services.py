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
