"""A database of the last release (0.1.0: no roll-ups, no cost, no reconciled_at) upgraded in place.

Its schema.sql is kept as it was released (tests/engine/releases/). Its rows are the ones today's
engine writes for a history, in the columns that version had; one session closed by that version's
reconcile (the '|reconciled' stamp). `metrics-worker schema`'s work then runs (schema.sql, the
back-fill), and every aggregate read must answer from the roll-ups what it answers from the rows.
"""

from __future__ import annotations

import random
from pathlib import Path

import psycopg

from tests.engine.histories import coherent_history
from tests.engine.rollups import assert_rollups_match, reads_both_ways
from tests.maintenance.helpers import aggregate_drift
from worker.backfill import backfill, pending
from worker.engine.apply import apply_events
from worker.read import queries
from worker.schema import apply_schema

RELEASE_0_1_0 = Path(__file__).parent / "releases" / "schema-0.1.0.sql"
# A session as that version's reconcile closed it (its stamp on status_version).
CLOSED_BY_RECONCILE = """
UPDATE session_metrics SET status = 'completed', status_version = status_version || '|reconciled'
WHERE session_id = (SELECT min(session_id) FROM session_metrics WHERE started_at IS NOT NULL)
RETURNING session_id
"""
TABLES = ("session_metrics", "round_metrics", "tool_call_metrics", "forward_request_metrics")


def test_a_database_of_release_0_1_0_is_upgraded_and_back_filled(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, coherent_history(random.Random(7), sessions=6))
        today = conn.execute("SELECT current_schema()").fetchone()
        assert today is not None
        old = f"{today[0]}_0_1_0"
        conn.execute(f'CREATE SCHEMA "{old}"')
        try:
            conn.execute(f'SET search_path = "{old}"')
            conn.execute(RELEASE_0_1_0.read_text())
            for table in TABLES:  # the rows in the columns that version had
                columns = [c for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
                    " AND table_name = %s ORDER BY ordinal_position", (old, table)).fetchall()]  # fmt: skip
                listed = ", ".join(columns)
                conn.execute(f'INSERT INTO {table} ({listed}) SELECT {listed} FROM "{today[0]}".{table}')
            closed = conn.execute(CLOSED_BY_RECONCILE).fetchone()
            assert closed is not None
            apply_schema(conn, force=True)
            assert pending(conn) != []
            assert conn.execute(
                "SELECT reconciled_at IS NOT NULL FROM session_metrics WHERE session_id = %s", closed
            ).fetchone() == (True,)
            backfill(conn)
            assert pending(conn) == []
            assert_rollups_match(conn)
            assert aggregate_drift(conn) == []
            summary = queries.summary(conn)
            assert summary.total_sessions > 0
        finally:
            conn.execute(f'SET search_path = "{today[0]}"')
    from_rollups, from_base = reads_both_ways(db_url.replace(today[0], old))
    try:
        assert from_rollups == from_base
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{old}" CASCADE')
