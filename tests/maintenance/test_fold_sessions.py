"""The sessions by hour and their fold (schema.sql: session_hourly, session_rollup, latency_fold;
worker/maintenance/fold.py): session_rollup holds exactly the days before the watermark,
session_hourly every hour; a late completion into a folded day reaches both, a fold next to an
apply loses nothing, a database upgraded from the version without session_hourly counts its
sessions again once, and the reads of the last hours are the base rows' counts."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

import psycopg

from contract.events import SessionCompleted
from tests.engine.histories import T0, coherent_history, deliveries, split
from tests.engine.rollups import assert_rollups_match, reads_both_ways
from tests.maintenance.folding import AFTER, apply_during_fold, wait_until_blocked, watermark
from worker.backfill import backfill, pending
from worker.engine.apply import apply_events
from worker.maintenance.fold import fold_latency
from worker.read import queries
from worker.schema import apply_schema

#: A token more on every started session: a move of sessions in T0's day (and the next).
NUDGE = "UPDATE session_metrics SET total_tokens = total_tokens + 1 WHERE started_at IS NOT NULL"

SESSION_DAYS = """
SELECT day, model, status, reconciled, sum(sessions), sum(total_rounds), sum(total_tokens),
       sum(tool_call_count), sum(total_tokens_saved)
FROM session_rollup WHERE day < (SELECT folded_upto FROM latency_fold)
GROUP BY 1, 2, 3, 4 HAVING sum(sessions) <> 0 ORDER BY 1, 2, 3, 4
"""

BASE_DAYS = """
SELECT (started_at AT TIME ZONE 'UTC')::date AS day, model, status, reconciled_at IS NOT NULL, count(*),
       sum(total_rounds), sum(total_tokens), sum(tool_call_count), sum(total_tokens_saved)
FROM session_metrics
WHERE started_at IS NOT NULL
  AND started_at < (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC'
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""

STARTED = "SELECT count(*) FROM session_metrics WHERE started_at IS NOT NULL"


def test_only_the_hours_are_written_until_a_fold(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(41), sessions=3))
    assert conn.execute("SELECT count(*) FROM session_rollup").fetchone() == (0,)
    assert (
        conn.execute("SELECT sum(sessions) FROM session_hourly").fetchone()
        == conn.execute(STARTED).fetchone()
    )
    out = fold_latency(conn, now=AFTER)
    assert out["session_rows"] > 0
    assert conn.execute("SELECT DISTINCT slot FROM session_rollup").fetchall() == [(0,)]
    assert conn.execute(SESSION_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall() != []
    assert_rollups_match(conn)


def test_a_late_completion_into_a_folded_day_reaches_session_rollup(db_url: str) -> None:
    rng = random.Random(42)
    delivered = deliveries(rng, coherent_history(rng, sessions=5))
    early = [ev for ev in delivered if not isinstance(ev, SessionCompleted)]
    late = [ev for ev in delivered if isinstance(ev, SessionCompleted)]
    assert late, "the history has completed sessions"
    with psycopg.connect(db_url, autocommit=True) as conn:
        for batch in split(rng, early):
            apply_events(conn, batch)
        out = fold_latency(conn, now=AFTER)
        assert out["session_rows"] > 0 and watermark(conn) == "2026-02-12"
        folded = conn.execute(SESSION_DAYS).fetchall()
        for batch in split(rng, late):  # started before the watermark: session_rollup moves
            apply_events(conn, batch)
        assert conn.execute(SESSION_DAYS).fetchall() != folded
        assert conn.execute(SESSION_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall()
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_an_apply_waits_for_a_fold_and_moves_the_folded_session_days(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(43), sessions=3))
        apply_during_fold(applier, folder, watcher, NUDGE)
        assert watcher.execute(SESSION_DAYS).fetchall() == watcher.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(watcher)


def test_a_fold_waits_for_an_apply_in_flight_and_folds_its_sessions(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(44), sessions=3))
        with applier.transaction():
            assert applier.execute(NUDGE).rowcount > 0  # hours moved, not yet folded
            thread = threading.Thread(target=fold_latency, args=(folder,), kwargs={"now": AFTER})
            thread.start()
            wait_until_blocked(watcher, folder.info.backend_pid, thread)
        thread.join(10)
        assert not thread.is_alive()
        assert watcher.execute(SESSION_DAYS).fetchall() == watcher.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(watcher)


def test_an_upgraded_database_keeps_its_session_counts(db_url: str) -> None:
    """The previous version: session_rollup written for every day by every apply, no session_hourly.
    The upgrade counts the sessions again from zero (the back-fill writes the days before the
    watermark into session_rollup, every hour into session_hourly, and the cost per user again);
    a fold and applies meanwhile lose nothing."""
    rng = random.Random(45)
    old, new = (
        coherent_history(rng, sessions=4, prefix="old-"),
        coherent_history(rng, sessions=4, prefix="new-"),
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, old)
        fold_latency(conn, now=T0 - timedelta(days=1))  # a watermark before the sessions' days
        summary, per_model = queries.summary(conn), queries.by_model(conn)
        assert summary.total_sessions > 0
        # that version's session roll-up: every day, from the base rows; no hours, no user cost by model
        conn.execute("DROP TABLE session_hourly, user_model_cost_rollup, user_cost_monthly")
        conn.execute("ALTER TABLE latency_fold DROP COLUMN months_upto")
        conn.execute("DELETE FROM session_rollup")
        conn.execute(
            "INSERT INTO session_rollup SELECT (started_at AT TIME ZONE 'UTC')::date, model, status,"
            " reconciled_at IS NOT NULL, 0, count(*), sum(total_rounds), sum(prompt_tokens),"
            " sum(completion_tokens), sum(total_tokens), sum(tool_call_count),"
            " sum(prompt_cached_tool_outputs), sum(total_compression_events), sum(total_tokens_saved)"
            " FROM session_metrics WHERE started_at IS NOT NULL GROUP BY 1, 2, 3, 4"
        )
        apply_schema(conn, force=True)
        assert pending(conn) == ["sessions"]
        assert conn.execute("SELECT count(*) FROM session_rollup").fetchone() == (0,)
        assert queries.summary(conn) == summary  # from the base table meanwhile
        assert queries.by_model(conn) == per_model
        apply_events(conn, new)  # counted by nobody yet: keys above ''
        fold_latency(conn, now=AFTER)  # folds the (empty) hours; the back-fill adds the rest
        assert backfill(conn, chunk_size=3)["sessions"] > 0
        assert pending(conn) == []
        assert conn.execute(SESSION_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_the_last_hours_are_the_base_rows_counts(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(46), sessions=5))
    fold_latency(conn, now=AFTER)  # folded days do not change what the hours read
    seen = 0
    for hours in (1, 2, 24, 168):
        for now in (T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=3)):
            end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            base = conn.execute(
                "SELECT model, count(*), count(*) FILTER (WHERE reconciled_at IS NOT NULL),"
                " sum(total_rounds), sum(total_tokens), sum(tool_call_count) FROM session_metrics"
                " WHERE started_at >= %s AND started_at < %s"
                ' GROUP BY 1 ORDER BY 5 DESC, model COLLATE "C"',
                (end - timedelta(hours=hours), end),
            ).fetchall()
            read = queries.by_model(conn, hours=hours, now=now)
            assert [
                (m.model, m.sessions, m.reconciled_sessions, m.rounds, m.tokens.total_tokens, m.tool_calls)
                for m in read
            ] == [tuple(r) for r in base]
            total = queries.summary(conn, hours=hours, now=now)
            assert total.total_sessions == sum(r[1] for r in base)
            assert total.total_tokens.total_tokens == sum(r[4] for r in base)
            seen += total.total_sessions
    assert seen > 0
