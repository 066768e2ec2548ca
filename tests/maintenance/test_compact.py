"""The compaction of closed hours (worker/maintenance/compact.py, run by the fold; schema.sql:
latency_hourly.raw): one row per hour, metric and name, its raw form stored, and every read
stays what the base tables say: after it, with late writes into compacted hours from the slot it
wrote and from others, next to a concurrent apply, compacted twice, and on an upgraded database."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.engine.histories import T0, coherent_history, deliveries, split
from tests.engine.rollups import assert_rollups_match, reads_both_ways
from tests.maintenance.folding import AFTER, wait_until_blocked
from worker.engine.apply import apply_events
from worker.maintenance import compact, fold
from worker.maintenance.compact import compact_before, compact_hours
from worker.maintenance.fold import fold_latency
from worker.read import queries
from worker.schema import apply_schema

#: Moving a round's completion by a second: a move of round_duration in the rounds' hours.
NUDGE = """
UPDATE round_metrics SET completed_at = completed_at + interval '1 second' WHERE completed_at IS NOT NULL
"""

#: The rows of latency_hourly as they are stored (xmin: whether a run rewrote them).
ROWS = "SELECT xmin::text, hour, metric, name, slot, lo, counts, raw FROM latency_hourly ORDER BY 2, 3, 4, 5"


def rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(ROWS).fetchall()


def in_slot(conn: psycopg.Connection[Any], slot: int) -> psycopg.Connection[Any]:
    """``conn`` writing the roll-ups' slot ``slot`` (schema.sql: metrics_rollup_slot reads it first)."""
    conn.execute("SELECT set_config('metrics.rollup_slot', %s, false)", (str(slot),))
    return conn


def hours_reads(conn: psycopg.Connection[Any]) -> list[Any]:
    """The latency of the last hours at a few instants around the histories' hours."""
    return [
        queries.latency(conn, hours=h, now=T0 + timedelta(hours=k)) for h in (1, 2, 24) for k in (0, 1, 2)
    ]


def assert_compacted(conn: psycopg.Connection[Any], before: datetime) -> None:
    """Every hour before ``before`` one row per metric and name, in slot 0, its raw form stored."""
    loose = conn.execute(
        "SELECT hour, metric, name, slot FROM latency_hourly WHERE hour < %s AND (slot <> 0 OR raw IS NULL)",
        (before,),
    ).fetchall()
    assert loose == []


def test_a_fold_compacts_the_closed_hours_and_the_reads_stay_exact(db_url: str) -> None:
    rng = random.Random(11)
    history = coherent_history(rng, sessions=4)
    with (
        psycopg.connect(db_url, autocommit=True) as one,
        psycopg.connect(db_url, autocommit=True) as other,
    ):
        in_slot(one, 0), in_slot(other, 3)
        for k, batch in enumerate(split(rng, deliveries(rng, history))):
            apply_events((one, other)[k % 2], batch)  # two workers: each hour in two slots
        assert one.execute("SELECT count(DISTINCT slot) FROM latency_hourly").fetchone() == (2,)
        before = hours_reads(one)
        done = fold_latency(one, now=AFTER)
        assert done["hours"] > 0 and done["hour_rows_in"] > done["hour_rows"] > 0
        assert_compacted(one, compact_before(AFTER))
        assert one.execute("SELECT count(*) FROM latency_hourly WHERE raw IS NULL").fetchone() == (0,)
        assert hours_reads(one) == before
        assert_rollups_match(one)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_an_hour_is_compacted_once_closed(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(12), sessions=3))
    last = conn.execute("SELECT max(hour) FROM latency_hourly").fetchone()[0]  # type: ignore[index]
    # Within the grace after the last hour ended: it is not closed yet (a late event may come).
    assert fold_latency(conn, now=last + timedelta(hours=1, minutes=4))["hours"] == 0
    open_rows = conn.execute("SELECT bool_and(raw IS NULL) FROM latency_hourly WHERE hour = %s", (last,))
    assert open_rows.fetchone() == (True,)
    assert fold_latency(conn, now=last + timedelta(hours=1, minutes=6))["hours"] == 1
    assert_compacted(conn, last + timedelta(hours=1))
    assert_rollups_match(conn)
    # Hours older than COMPACTED_SPAN are left to the read: raw NULL, they stay so.
    conn.execute("UPDATE latency_hourly SET raw = NULL")
    assert fold_latency(conn, now=last + compact.COMPACTED_SPAN + timedelta(hours=2))["hours"] == 0


@pytest.mark.parametrize("slot", [0, 5])
def test_late_writes_into_compacted_hours_stay_exact(db_url: str, slot: int) -> None:
    """From slot 0 (the compacted rows': the upsert adds to them and un-packs them) and from another
    (rows of its own beside them); the next fold compacts the hours again."""
    rng = random.Random(13 + slot)
    history = coherent_history(rng, sessions=4)
    delivered = deliveries(rng, history)
    early, late = delivered[: len(delivered) // 2], delivered[len(delivered) // 2 :]
    with psycopg.connect(db_url, autocommit=True) as conn:
        in_slot(conn, slot)
        for batch in split(rng, early):
            apply_events(conn, batch)
        fold_latency(conn, now=AFTER)
        compacted = rows(conn)
        assert compacted and all(r[7] is not None for r in compacted)
        for batch in split(rng, late):
            apply_events(conn, batch)
        assert conn.execute(NUDGE).rowcount > 0
        loose = conn.execute(
            "SELECT count(*) FILTER (WHERE slot = 0), count(*) FILTER (WHERE slot <> 0) FROM latency_hourly"
            " WHERE raw IS NULL AND hour < %s",
            (compact_before(AFTER),),
        ).fetchone()
        assert loose is not None and (loose[0] > 0) == (slot == 0) and (loose[1] > 0) == (slot != 0)
        assert_rollups_match(conn)
        late_reads = hours_reads(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base
    with psycopg.connect(db_url, autocommit=True) as conn:
        again = fold_latency(conn, now=AFTER)
        assert again["hours"] > 0
        assert_compacted(conn, compact_before(AFTER))
        assert hours_reads(conn) == late_reads
        assert_rollups_match(conn)


def test_a_write_that_forgets_raw_fails(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(14), sessions=2))
    fold_latency(conn, now=AFTER)
    with pytest.raises(psycopg.errors.CheckViolation, match="latency_hourly_raw"):
        conn.execute("UPDATE latency_hourly SET counts = counts || 1")


def test_compacting_twice_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(15), sessions=3))
    first = fold_latency(conn, now=AFTER)
    assert first["hours"] > 0
    compacted = rows(conn)
    again = fold_latency(conn, now=AFTER)
    assert (again["hours"], again["hour_rows_in"], again["hour_rows"]) == (0, 0, 0)
    assert rows(conn) == compacted  # not even rewritten: the same row versions
    # Forced again (raw NULL on every row, as a late write does): the same rows, rewritten.
    conn.execute("UPDATE latency_hourly SET raw = NULL")
    fold_latency(conn, now=AFTER)
    assert [r[1:] for r in rows(conn)] == [r[1:] for r in compacted]
    assert_rollups_match(conn)


def test_a_compaction_waits_for_an_apply_in_flight_and_counts_it(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(16), sessions=3))
        pid = folder.info.backend_pid
        with applier.transaction():
            assert applier.execute(NUDGE).rowcount > 0  # due hours written, not committed
            thread = threading.Thread(target=compact_hours, args=(folder, fold.LOCK), kwargs={"now": AFTER})
            thread.start()
            wait_until_blocked(watcher, pid, thread)
        thread.join(10)
        assert not thread.is_alive()
        assert_compacted(watcher, compact_before(AFTER))
        assert_rollups_match(watcher)


def test_a_compaction_waits_on_the_lock_every_move_takes_shared(db_url: str) -> None:
    """Whatever rows an apply holds: a move's first step (schema.sql: round_rollups_move) is enough."""
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(19), sessions=2))
        with applier.transaction():
            applier.execute(
                "SELECT pg_advisory_xact_lock_shared(1919904877, 'latency_fold'::regclass::oid::int)"
            )
            thread = threading.Thread(target=compact_hours, args=(folder, fold.LOCK), kwargs={"now": AFTER})
            thread.start()
            wait_until_blocked(watcher, folder.info.backend_pid, thread)
            waits = watcher.execute(
                "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (folder.info.backend_pid,)
            )
            assert waits.fetchone() == ("advisory",)
        thread.join(10)
        assert not thread.is_alive()
        assert_compacted(watcher, compact_before(AFTER))


def test_an_apply_during_a_compaction_waits_and_adds_to_the_compacted_rows(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(17), sessions=3))
        before = compact_before(AFTER)
        with folder.transaction():  # compact_hours' statements, held open before its commit
            folder.execute(fold.LOCK)
            done = folder.execute(
                compact.COMPACT, {"since": before - compact.COMPACTED_SPAN, "until": before}
            ).fetchone()
            assert done is not None and done[0] > 0
            thread = threading.Thread(target=applier.execute, args=(NUDGE,))
            thread.start()
            wait_until_blocked(watcher, applier.info.backend_pid, thread)
        thread.join(10)
        assert not thread.is_alive()
        assert watcher.execute("SELECT count(*) FROM latency_hourly WHERE raw IS NULL").fetchone() != (0,)
        assert_rollups_match(watcher)


def test_an_upgraded_database_gets_the_column_and_compacts(db_url: str) -> None:
    """The previous version: latency_hourly without ``raw``, a row per slot in every hour."""
    rng = random.Random(18)
    history = coherent_history(rng, sessions=4)
    with (
        psycopg.connect(db_url, autocommit=True) as conn,
        psycopg.connect(db_url, autocommit=True) as other,
    ):
        in_slot(conn, 0), in_slot(other, 2)
        apply_events(conn, history[: len(history) // 3])
        apply_events(other, history[len(history) // 3 : len(history) * 2 // 3])
        before = hours_reads(conn)
        conn.execute("ALTER TABLE latency_hourly DROP COLUMN raw")
        apply_schema(conn, force=True)  # the previous version's file had another digest
        assert conn.execute("SELECT count(*) FROM latency_hourly WHERE raw IS NOT NULL").fetchone() == (0,)
        assert hours_reads(conn) == before
        assert fold_latency(conn, now=AFTER)["hours"] > 0
        assert_compacted(conn, compact_before(AFTER))
        assert hours_reads(conn) == before
        with pytest.raises(psycopg.errors.CheckViolation):  # the constraint came with the column
            conn.execute("UPDATE latency_hourly SET counts = counts || 1")
        apply_events(other, history[len(history) * 2 // 3 :])
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_bad_hour_grace_is_refused(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match="hour grace: must not be negative"):
        fold_latency(conn, hour_grace=timedelta(minutes=-1))
