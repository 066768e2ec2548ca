"""The tool calls by hour and their fold (schema.sql: tool_hourly, tool_rollup, latency_fold;
worker/maintenance/fold.py): tool_rollup holds exactly the days before the watermark, tool_hourly
every hour; a late call into a folded day reaches both, a fold next to an apply loses nothing, a
database upgraded from the version without tool_hourly counts its calls again once, and the read of
the last hours is the base rows' count."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

import psycopg

from contract.events import ToolCompleted
from tests.engine.histories import T0, coherent_history, deliveries, split
from tests.engine.rollups import assert_rollups_match, reads_both_ways
from tests.maintenance.folding import AFTER, apply_during_fold, wait_until_blocked, watermark
from worker.backfill import backfill, pending
from worker.engine.apply import apply_events
from worker.maintenance.fold import fold_latency
from worker.read import queries
from worker.schema import apply_schema

#: Turning every finished tool call's outcome: a move of tool calls in T0's day (and the next).
FLIP = "UPDATE tool_call_metrics SET success = NOT success WHERE success IS NOT NULL"

TOOL_DAYS = """
SELECT day, tool_name, sum(calls), sum(succeeded), sum(failed) FROM tool_rollup
WHERE day < (SELECT folded_upto FROM latency_fold) GROUP BY 1, 2 HAVING sum(calls) <> 0 ORDER BY 1, 2
"""

BASE_DAYS = """
SELECT (started_at AT TIME ZONE 'UTC')::date AS day, tool_name, count(*), count(*) FILTER (WHERE success),
       count(*) FILTER (WHERE NOT success)
FROM tool_call_metrics
WHERE started_at IS NOT NULL AND tool_name IS NOT NULL
  AND started_at < (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC'
GROUP BY 1, 2 ORDER BY 1, 2
"""


def test_only_the_hours_are_written_until_a_fold(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(21), sessions=3))
    assert conn.execute("SELECT count(*) FROM tool_rollup").fetchone() == (0,)
    assert (
        conn.execute("SELECT sum(calls) FROM tool_hourly").fetchone()
        == conn.execute(
            "SELECT count(*) FROM tool_call_metrics WHERE started_at IS NOT NULL AND tool_name IS NOT NULL"
        ).fetchone()
    )
    out = fold_latency(conn, now=AFTER)
    assert out["tool_rows"] > 0
    assert conn.execute("SELECT DISTINCT slot FROM tool_rollup").fetchall() == [(0,)]
    assert conn.execute(TOOL_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall() != []
    assert_rollups_match(conn)


def test_a_late_tool_call_into_a_folded_day_reaches_tool_rollup(db_url: str) -> None:
    rng = random.Random(22)
    history = coherent_history(rng, sessions=5)
    delivered = deliveries(rng, history)
    early = [ev for ev in delivered if not isinstance(ev, ToolCompleted)]
    late = [ev for ev in delivered if isinstance(ev, ToolCompleted)]
    assert late, "the history has finished tool calls"
    with psycopg.connect(db_url, autocommit=True) as conn:
        for batch in split(rng, early):
            apply_events(conn, batch)
        fold_latency(conn, now=AFTER)
        assert watermark(conn) == "2026-02-12"
        folded = conn.execute(TOOL_DAYS).fetchall()
        for batch in split(rng, late):  # their calls started before the watermark: tool_rollup moves
            apply_events(conn, batch)
        assert conn.execute(TOOL_DAYS).fetchall() != folded
        assert conn.execute(TOOL_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall()
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_an_apply_waits_for_a_fold_and_moves_the_folded_tool_days(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(23), sessions=3))
        apply_during_fold(applier, folder, watcher, FLIP)
        assert watcher.execute(TOOL_DAYS).fetchall() == watcher.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(watcher)


def test_a_fold_waits_for_an_apply_in_flight_and_folds_its_tool_calls(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(24), sessions=3))
        with applier.transaction():
            assert applier.execute(FLIP).rowcount > 0  # hours moved, not yet folded
            thread = threading.Thread(target=fold_latency, args=(folder,), kwargs={"now": AFTER})
            thread.start()
            wait_until_blocked(watcher, folder.info.backend_pid, thread)
        thread.join(10)
        assert not thread.is_alive()
        assert watcher.execute(TOOL_DAYS).fetchall() == watcher.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(watcher)


def test_an_upgraded_database_keeps_its_tool_counts(db_url: str) -> None:
    """The previous version: tool_rollup written for every day by every apply, no tool_hourly. The
    upgrade counts the calls again from zero (the back-fill writes the days before the watermark
    into tool_rollup, every hour into tool_hourly); a fold and applies meanwhile lose nothing."""
    rng = random.Random(25)
    history = coherent_history(rng, sessions=4)
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, history[: len(history) // 2])
        fold_latency(conn, now=T0 - timedelta(days=1))  # a watermark before the calls' days
        counts = queries.tool_metrics(conn)
        # that version's tool roll-up: every day, from the base rows; no hours
        conn.execute("DROP TABLE tool_hourly")
        conn.execute("DELETE FROM tool_rollup")
        conn.execute(
            "INSERT INTO tool_rollup SELECT (started_at AT TIME ZONE 'UTC')::date, tool_name, 0, count(*),"
            " count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success) FROM tool_call_metrics"
            " WHERE started_at IS NOT NULL AND tool_name IS NOT NULL GROUP BY 1, 2"
        )
        apply_schema(conn, force=True)
        assert pending(conn) == ["tool_calls"]
        assert conn.execute("SELECT count(*) FROM tool_rollup").fetchone() == (0,)
        assert queries.tool_metrics(conn) == counts  # from the base table meanwhile
        apply_events(conn, history[len(history) // 2 :])  # counted by nobody yet: keys above ''
        fold_latency(conn, now=AFTER)  # folds the (empty) hours; the back-fill adds the rest
        assert backfill(conn, chunk_size=5)["tool_calls"] > 0
        assert pending(conn) == []
        assert conn.execute(TOOL_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_the_last_hours_are_the_base_rows_count(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(26), sessions=5))
    fold_latency(conn, now=AFTER)  # folded days do not change what the hours read
    for hours in (1, 2, 24, 168):
        for now in (T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=3)):
            read = queries.tool_metrics(conn, hours=hours, now=now)
            end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            base = conn.execute(
                "SELECT tool_name, count(*), count(*) FILTER (WHERE success),"
                " count(*) FILTER (WHERE NOT success)"
                " FROM tool_call_metrics WHERE tool_name IS NOT NULL AND started_at >= %s AND started_at < %s"
                ' GROUP BY 1 ORDER BY 2 DESC, tool_name COLLATE "C"',
                (end - timedelta(hours=hours), end),
            ).fetchall()
            assert [(t.tool_name, t.calls, t.succeeded, t.failed) for t in read] == [tuple(r) for r in base]
    assert any(queries.tool_metrics(conn, hours=24, now=T0))
