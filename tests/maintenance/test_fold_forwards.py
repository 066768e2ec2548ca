"""The forwards by hour and their fold (schema.sql: forward_hourly, forward_rollup, latency_fold;
worker/maintenance/fold.py): forward_rollup holds exactly the days before the watermark,
forward_hourly every hour; a late completion into a folded day reaches both, a fold next to an
apply loses nothing, a database upgraded from the version without forward_hourly counts its
forwards again once, and the reads of the last hours are the base rows' counts."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import psycopg

from contract.events import ForwardCompleted
from tests.engine.histories import T0, coherent_history, deliveries, split
from tests.engine.rollups import assert_rollups_match, reads_both_ways
from tests.maintenance.folding import AFTER, apply_during_fold, watermark
from worker.backfill import backfill, pending
from worker.engine.apply import apply_events
from worker.maintenance.fold import fold_latency
from worker.read import queries
from worker.schema import apply_schema

#: Moving every completed forward's completion by a second: a move of forwards in T0's day.
NUDGE = """
UPDATE forward_request_metrics SET completed_at = completed_at + interval '1 second'
WHERE completed_at IS NOT NULL
"""

FORWARD_DAYS = """
SELECT day, endpoint, model, sum(requests), sum(completed), sum(duration_us), sum(prompt_tokens)
FROM forward_rollup WHERE day < (SELECT folded_upto FROM latency_fold)
GROUP BY 1, 2, 3 HAVING sum(requests) <> 0 ORDER BY 1, 2, 3
"""

BASE_DAYS = """
SELECT (started_at AT TIME ZONE 'UTC')::date AS day, endpoint, model, count(*), count(completed_at),
       COALESCE(sum((EXTRACT(EPOCH FROM completed_at - started_at) * 1000000)::int8), 0),
       COALESCE(sum(prompt_tokens), 0)
FROM forward_request_metrics
WHERE started_at IS NOT NULL
  AND started_at < (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC'
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def test_a_late_completion_into_a_folded_day_reaches_forward_rollup(db_url: str) -> None:
    rng = random.Random(31)
    delivered = deliveries(rng, coherent_history(rng, sessions=5))
    early = [ev for ev in delivered if not isinstance(ev, ForwardCompleted)]
    late = [ev for ev in delivered if isinstance(ev, ForwardCompleted)]
    assert late, "the history has completed forwards"
    with psycopg.connect(db_url, autocommit=True) as conn:
        for batch in split(rng, early):
            apply_events(conn, batch)
        out = fold_latency(conn, now=AFTER)
        assert out["forward_rows"] > 0 and watermark(conn) == "2026-02-12"
        folded = conn.execute(FORWARD_DAYS).fetchall()
        for batch in split(rng, late):  # started before the watermark: forward_rollup moves
            apply_events(conn, batch)
        assert conn.execute(FORWARD_DAYS).fetchall() != folded
        assert conn.execute(FORWARD_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall()
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_an_apply_waits_for_a_fold_and_moves_the_folded_forward_days(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(32), sessions=3))
        apply_during_fold(applier, folder, watcher, NUDGE)
        assert watcher.execute(FORWARD_DAYS).fetchall() == watcher.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(watcher)


def test_an_upgraded_database_keeps_its_forward_counts(db_url: str) -> None:
    """The previous version: forward_rollup written for every day, no forward_hourly. The upgrade
    counts the forwards again from zero; a fold and applies meanwhile lose nothing."""
    rng = random.Random(33)
    old, new = (
        coherent_history(rng, sessions=4, prefix="old-"),
        coherent_history(rng, sessions=4, prefix="new-"),
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, old)
        fold_latency(conn, now=T0 - timedelta(days=1))  # a watermark before the forwards' days
        summary = queries.forward_summary(conn)
        assert summary.total_requests > 0
        conn.execute("DROP TABLE forward_hourly")
        conn.execute("DELETE FROM forward_rollup")
        conn.execute(
            "INSERT INTO forward_rollup (day, endpoint, model, slot, requests)"
            " SELECT (started_at AT TIME ZONE 'UTC')::date, endpoint, model, 0, count(*)"
            " FROM forward_request_metrics WHERE started_at IS NOT NULL GROUP BY 1, 2, 3"
        )
        apply_schema(conn, force=True)
        assert pending(conn) == ["forwards"]
        assert conn.execute("SELECT count(*) FROM forward_rollup").fetchone() == (0,)
        assert queries.forward_summary(conn) == summary  # from the base table meanwhile
        apply_events(conn, new)
        fold_latency(conn, now=AFTER)
        assert backfill(conn, chunk_size=5)["forwards"] > 0
        assert pending(conn) == []
        assert conn.execute(FORWARD_DAYS).fetchall() == conn.execute(BASE_DAYS).fetchall() != []
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_the_last_hours_are_the_base_rows_counts(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(34), sessions=5))
    fold_latency(conn, now=AFTER)
    seen = 0
    for hours in (1, 2, 24, 168):
        for now in (T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=3)):
            end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            base = conn.execute(
                "SELECT endpoint, count(*), count(*) FILTER (WHERE status = 'success'),"
                " count(*) FILTER (WHERE status = 'error') FROM forward_request_metrics"
                " WHERE started_at >= %s AND started_at < %s"
                ' GROUP BY 1 ORDER BY 2 DESC, endpoint COLLATE "C"',
                (end - timedelta(hours=hours), end),
            ).fetchall()
            read = queries.forward_by_endpoint(conn, hours=hours, now=now)
            assert [(e.endpoint, e.requests, e.successful, e.failed) for e in read] == [
                tuple(r) for r in base
            ]
            total = queries.forward_summary(conn, hours=hours, now=now)
            assert total.total_requests == sum(r[1] for r in base)
            seen += total.total_requests
    assert seen > 0
