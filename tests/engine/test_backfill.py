"""Upgrading a database written by a version without roll-ups: `metrics-worker schema` back-fills
them a chunk at a time, exactly, next to a worker applying events, and only once."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from datetime import timedelta

import psycopg

from tests.engine.costs import example_history
from tests.engine.histories import T0, coherent_history, deliveries
from tests.engine.reference import apply_retrying
from tests.engine.rollups import assert_rollups_match, reads_both_ways
from worker.backfill import backfill, pending
from worker.engine.apply import apply_events
from worker.read import queries
from worker.schema import apply_schema

# What the previous version's schema did not have.
_DROP_ROLLUPS = """
DROP TABLE session_rollup, tool_rollup, tool_hourly, forward_rollup, forward_hourly, rollup_backfill,
           round_cost_rollup, user_cost_rollup,
           round_hourly, latency_hourly, latency_daily;
DROP FUNCTION session_rollup_trigger, tool_rollups_trigger, forward_rollups_trigger, round_rollups_trigger
              CASCADE;
DROP FUNCTION session_rollup_move, tool_rollups_move, forward_rollups_move, round_rollups_move,
              metrics_rollup_counted_upto, metrics_rollup_slot;
"""


def _previous_version_database(conn: psycopg.Connection, rng: random.Random, sessions: int) -> list:
    conn.execute(_DROP_ROLLUPS)
    history = [ev for i in range(sessions) for ev in coherent_history(rng, sessions=3, prefix=f"old{i}-")]
    apply_events(conn, history)
    apply_schema(conn, force=True)  # the upgrade: roll-up tables, none of the rows counted yet
    return history


def test_backfill_next_to_a_running_worker_is_exact_and_runs_once(
    db_url: str, conn: psycopg.Connection
) -> None:
    rng = random.Random(11)
    history = _previous_version_database(conn, rng, sessions=20)
    assert pending(conn) == [
        "forward_latency", "forwards", "round_hourly", "rounds", "sessions", "tool_calls", "tool_latency"
    ]  # fmt: skip
    before = queries.summary(conn)  # answered from the base tables meanwhile
    assert before.total_sessions == 60
    # A worker keeps applying: redeliveries of the old history, and new sessions.
    live = deliveries(rng, history, max_copies=2) + [
        ev for i in range(20) for ev in coherent_history(rng, sessions=2, prefix=f"new{i}-")
    ]
    rng.shuffle(live)
    errors: list[BaseException] = []
    worker = threading.Thread(
        target=apply_retrying, args=(db_url, [live[i : i + 7] for i in range(0, len(live), 7)], errors)
    )
    worker.start()
    counted = backfill(conn, chunk_size=4)
    worker.join(timeout=120)
    assert not errors
    assert counted["sessions"] >= 60 and counted["tool_calls"] > 0 and counted["forwards"] > 0
    assert pending(conn) == []
    assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base
    assert backfill(conn, chunk_size=4) == dict.fromkeys(
        ["sessions", "tool_calls", "forwards", "rounds", "round_hourly", "tool_latency", "forward_latency"], 0
    )


# What the version with the daily roll-ups but no hourly ones did not have: its triggers had the
# daily roll-ups' names (they count no hour here: no back-fill row says the hours are counted).
_DROP_HOURLY = """
DELETE FROM round_hourly;
DELETE FROM latency_hourly;
DELETE FROM latency_daily;
ALTER TRIGGER round_rollups_insert ON round_metrics RENAME TO round_cost_rollup_insert;
ALTER TRIGGER round_rollups_update ON round_metrics RENAME TO round_cost_rollup_update;
ALTER TRIGGER round_rollups_delete ON round_metrics RENAME TO round_cost_rollup_delete;
ALTER TRIGGER tool_rollups_insert ON tool_call_metrics RENAME TO tool_rollup_insert;
ALTER TRIGGER tool_rollups_update ON tool_call_metrics RENAME TO tool_rollup_update;
ALTER TRIGGER tool_rollups_delete ON tool_call_metrics RENAME TO tool_rollup_delete;
ALTER TRIGGER forward_rollups_insert ON forward_request_metrics RENAME TO forward_rollup_insert;
ALTER TRIGGER forward_rollups_update ON forward_request_metrics RENAME TO forward_rollup_update;
ALTER TRIGGER forward_rollups_delete ON forward_request_metrics RENAME TO forward_rollup_delete;
DELETE FROM rollup_backfill WHERE entity IN ('round_hourly', 'tool_latency', 'forward_latency');
ALTER TABLE rollup_backfill DROP CONSTRAINT rollup_backfill_entity_check,
    ADD CONSTRAINT rollup_backfill_entity_check
        CHECK (entity IN ('sessions', 'tool_calls', 'forwards', 'rounds'));
"""


def test_a_database_with_daily_rollups_only_backfills_the_hourly_ones(conn: psycopg.Connection) -> None:
    rng = random.Random(15)
    conn.execute(_DROP_HOURLY)
    history = [ev for i in range(4) for ev in coherent_history(rng, sessions=3, prefix=f"old{i}-")]
    apply_events(conn, history)
    apply_schema(conn, force=True)
    assert pending(conn) == ["forward_latency", "round_hourly", "tool_latency"]
    before = queries.latency(conn)  # answered from the base tables meanwhile
    counted = backfill(conn, chunk_size=5)
    assert counted["round_hourly"] > 0 and counted["sessions"] == 0
    assert pending(conn) == []
    assert_rollups_match(conn)
    assert queries.latency(conn) == before


def test_metrics_worker_schema_backfills(db_url: str, conn: psycopg.Connection) -> None:
    _previous_version_database(conn, random.Random(12), sessions=3)
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "schema", "--database-url", db_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "schema applied" in out and "roll-ups back-filled: sessions 9" in out
    assert pending(conn) == []
    assert_rollups_match(conn)
    again = subprocess.run(
        [sys.executable, "-m", "worker.cli", "schema", "--database-url", db_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "back-filled" not in again


def test_a_table_dropped_and_created_again_starts_its_rollup_from_zero(conn: psycopg.Connection) -> None:
    apply_events(conn, coherent_history(random.Random(13), sessions=4))
    conn.execute("DROP TABLE tool_call_metrics")
    apply_schema(conn, force=True)  # what `metrics-worker schema` does to repair it
    assert pending(conn) == []
    assert conn.execute("SELECT count(*) FROM tool_rollup").fetchone() == (0,)
    assert_rollups_match(conn)


def test_a_tool_rollup_that_counted_calls_only_is_counted_again(conn: psycopg.Connection) -> None:
    apply_events(conn, coherent_history(random.Random(14), sessions=4))
    # The previous version's tool roll-up: calls per day and tool, no outcomes.
    conn.execute("ALTER TABLE tool_rollup DROP COLUMN succeeded, DROP COLUMN failed")
    apply_schema(conn, force=True)
    assert pending(conn) == ["tool_calls"]
    assert conn.execute("SELECT count(*) FROM tool_rollup").fetchone() == (0,)
    from_base = queries.tool_metrics(conn)  # answered from the base table meanwhile
    assert (
        sum(t.calls for t in from_base)
        == conn.execute(
            "SELECT count(*) FROM tool_call_metrics WHERE started_at IS NOT NULL AND tool_name IS NOT NULL"
        ).fetchone()[0]
    )
    assert backfill(conn, chunk_size=3)["tool_calls"] > 0
    assert pending(conn) == []
    assert_rollups_match(conn)
    assert queries.tool_metrics(conn) == from_base


def test_an_hourly_rollup_without_cost_is_counted_again_with_it(conn: psycopg.Connection) -> None:
    rng = random.Random(16)
    history = [ev for i in range(4) for ev in coherent_history(rng, sessions=3, prefix=f"old{i}-")]
    apply_events(conn, history + example_history(T0))
    series = queries.hourly_series(conn, hours=24, now=T0 + timedelta(hours=1))
    assert sum(p.cost_usd for p in series.points) > 0
    # The version before: rounds per hour without their cost.
    conn.execute("ALTER TABLE round_hourly DROP COLUMN cost_usd, DROP COLUMN unpriced")
    apply_schema(conn, force=True)
    assert pending(conn) == ["round_hourly"]
    assert conn.execute("SELECT count(*) FROM round_hourly").fetchone() == (0,)
    assert queries.hourly_series(conn, hours=24, now=T0 + timedelta(hours=1)) == series  # from round_metrics
    assert backfill(conn, chunk_size=5)["round_hourly"] > 0
    assert pending(conn) == []
    assert_rollups_match(conn)
    assert queries.hourly_series(conn, hours=24, now=T0 + timedelta(hours=1)) == series


# The version before the dense arrays: latency_hourly with a row per bucket (and no latency_daily).
_PER_BUCKET_LATENCY = """
DROP TABLE latency_hourly, latency_daily;
CREATE TABLE latency_hourly (
    hour timestamptz NOT NULL, metric text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL,
    bucket int NOT NULL, slot smallint NOT NULL, n bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, metric, name, bucket, slot));
INSERT INTO latency_hourly VALUES (now(), 'round_duration', 'm', 3, 0, 7);
"""


def test_a_latency_rollup_with_a_row_per_bucket_is_counted_again_as_arrays(conn: psycopg.Connection) -> None:
    rng = random.Random(17)
    history = [ev for i in range(4) for ev in coherent_history(rng, sessions=3, prefix=f"old{i}-")]
    apply_events(conn, history + example_history(T0))
    now = T0 + timedelta(hours=1)
    reads = (
        queries.latency(conn),
        queries.latency(conn, hours=24, now=now),
        queries.hourly_series(conn, now=now),
    )
    conn.execute(_PER_BUCKET_LATENCY)
    apply_schema(conn, force=True)
    assert pending(conn) == ["forward_latency", "round_hourly", "tool_latency"]
    assert conn.execute("SELECT count(*) FROM round_hourly").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM latency_hourly").fetchone() == (0,)
    # answered from the base tables meanwhile, as from the roll-ups before
    assert (
        queries.latency(conn),
        queries.latency(conn, hours=24, now=now),
        queries.hourly_series(conn, now=now),
    ) == reads
    counted = backfill(conn, chunk_size=5)
    assert counted["round_hourly"] > 0 and counted["tool_latency"] > 0 and counted["forward_latency"] > 0
    assert pending(conn) == []
    assert_rollups_match(conn)
    assert (
        queries.latency(conn),
        queries.latency(conn, hours=24, now=now),
        queries.hourly_series(conn, now=now),
    ) == reads
