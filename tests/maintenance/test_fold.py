"""The latency fold (worker/maintenance/fold.py; schema.sql: latency_fold): latency_daily is summed from
latency_hourly for the past days, and every roll-up and read stays what the base tables say: after
a fold, with late events into folded days, next to a concurrent apply, folded twice, and on a
database upgraded from the version that wrote latency_daily in every apply."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.engine.histories import T0, coherent_history, deliveries, split
from tests.engine.rollups import assert_rollups_match, reads_both_ways, rollup_buckets
from tests.maintenance.folding import AFTER, apply_during_fold, wait_until_blocked, watermark
from worker.cli import main as worker_main
from worker.engine.apply import apply_events
from worker.maintenance import fold
from worker.maintenance.fold import fold_latency, fold_target
from worker.maintenance.reconcile import HintSnapshot, reconcile
from worker.schema import apply_schema

#: Moving a round's completion by a second: a move of round_duration in T0's day.
NUDGE = """
UPDATE round_metrics SET completed_at = completed_at + interval '1 second' WHERE completed_at IS NOT NULL
"""


def daily_rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT xmin::text, * FROM latency_daily ORDER BY day, metric, name, slot").fetchall()


def days_with_latencies(conn: psycopg.Connection[Any]) -> set[date]:
    rows = conn.execute(
        "SELECT DISTINCT (hour AT TIME ZONE 'UTC')::date FROM latency_hourly WHERE 0 <> ANY(counts)"
    ).fetchall()
    return {d for (d,) in rows}


def test_a_new_database_folds_nothing_until_the_days_are_past(conn: psycopg.Connection[Any]) -> None:
    assert watermark(conn) == "-infinity"
    apply_events(conn, coherent_history(random.Random(1), sessions=3))
    assert conn.execute("SELECT count(*) FROM latency_daily").fetchone() == (0,)  # only hours written
    assert_rollups_match(conn)
    # At T0 (and within the grace after midnight) T0's date is not over: nothing of it is folded.
    before = fold_latency(conn, now=T0)
    assert before["folded_upto"] == (T0 - fold.DEFAULT_GRACE).date().isoformat()
    assert date.fromisoformat(before["folded_upto"]) <= T0.date()
    assert_rollups_match(conn)
    done = fold_latency(conn, now=AFTER)
    assert done["folded_upto"] == fold_target(AFTER).isoformat() == "2026-02-12"
    assert done["days"] + before["days"] == len(days_with_latencies(conn)) > 0
    assert done["rows"] > 0
    # One row per day, metric and name, in slot 0: the days' hours summed, stored raw too.
    assert conn.execute("SELECT DISTINCT slot FROM latency_daily").fetchall() == [(0,)]
    assert conn.execute("SELECT count(*) FROM latency_daily WHERE raw IS NULL").fetchone() == (0,)
    assert_rollups_match(conn)


def test_fold_then_late_events_into_the_folded_days_stay_exact(db_url: str) -> None:
    rng = random.Random(7)
    history = coherent_history(rng, sessions=4)
    delivered = deliveries(rng, history)
    early, late = delivered[: len(delivered) // 2], delivered[len(delivered) // 2 :]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for batch in split(rng, early):
            apply_events(conn, batch)
        fold_latency(conn, now=AFTER)
        folded = daily_rows(conn)
        for batch in split(rng, late):  # before the watermark: the moves write latency_daily too
            apply_events(conn, batch)
        assert daily_rows(conn) != folded
        # a move's rows into a folded day: raw NULL (the check refuses a stale one), packed by the read
        assert conn.execute("SELECT bool_or(raw IS NULL) FROM latency_daily").fetchone() == (True,)
        reconcile(conn, HintSnapshot(), now=T0 + timedelta(hours=1), grace=timedelta(minutes=1))
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_folding_twice_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    apply_events(conn, coherent_history(random.Random(2), sessions=3))
    first = fold_latency(conn, now=AFTER, chunk_days=1)
    rows = daily_rows(conn)
    again = fold_latency(conn, now=AFTER)
    nothing = {"days": 0, "rows": 0, "tool_rows": 0, "forward_rows": 0, "session_rows": 0, "month_rows": 0}
    nothing.update(hours=0, hour_rows_in=0, hour_rows=0)  # and no hour compacted again
    assert again == {**nothing, "folded_upto": first["folded_upto"]}
    assert daily_rows(conn) == rows  # not even rewritten: the same row versions
    # Folded again from further back (the watermark moved back): the same sums, rewritten.
    conn.execute("UPDATE latency_fold SET folded_upto = %s", (T0.date() - timedelta(days=3),))
    fold_latency(conn, now=AFTER)
    assert [r[1:] for r in daily_rows(conn)] == [r[1:] for r in rows]
    assert_rollups_match(conn)


def test_a_fold_waits_for_an_apply_in_flight_and_counts_it(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(3), sessions=3))
        pid = folder.info.backend_pid
        with applier.transaction():
            assert applier.execute(NUDGE).rowcount > 0  # hours moved, not yet days
            thread = threading.Thread(target=fold_latency, args=(folder,), kwargs={"now": AFTER})
            thread.start()
            wait_until_blocked(watcher, pid, thread)
        thread.join(10)
        assert not thread.is_alive()
        assert watermark(watcher) == "2026-02-12"
        assert_rollups_match(watcher)


def test_an_apply_during_a_fold_waits_and_writes_the_folded_days(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        apply_events(applier, coherent_history(random.Random(4), sessions=3))
        apply_during_fold(applier, folder, watcher, NUDGE)
        assert_rollups_match(watcher)  # the apply read the new watermark: it moved the days too


def test_an_upgraded_database_keeps_its_counts(db_url: str) -> None:
    """The previous version: latency_daily complete for every day, written by every apply, and no
    latency_fold. After the upgrade the days before it are read from latency_daily, its own from the
    hours, and the first fold replaces what that version wrote for them."""
    rng = random.Random(5)
    history = coherent_history(rng, sessions=4)
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, history[: len(history) // 2])
        fold_latency(conn, now=AFTER + timedelta(days=3650))  # every day in latency_daily, as it was
        conn.execute("DROP TABLE latency_fold")
        apply_schema(conn, force=True)  # the previous version's file had another digest
        assert watermark(conn) == fold_target(datetime.now(UTC), timedelta(0)).isoformat()  # today, UTC
        assert_rollups_match(conn)
        # The upgrade on T0's date: the rows of that version for T0's day and after are ignored...
        conn.execute("UPDATE latency_fold SET folded_upto = %s", (T0.date(),))
        before = rollup_buckets(conn)["latency_daily"]
        assert before
        apply_events(conn, history[len(history) // 2 :])
        assert_rollups_match(conn)
        # ... and replaced when those days are folded.
        fold_latency(conn, now=AFTER)
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_an_upgraded_database_gets_the_daily_raw_column(db_url: str) -> None:
    """The previous version: latency_daily without ``raw``. The upgrade adds it, with its check,
    filled for the rows there; the next fold stores it for the days it writes."""
    rng = random.Random(11)
    history = coherent_history(rng, sessions=4)
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, history[: len(history) // 2])
        fold_latency(conn, now=AFTER)
        before = rollup_buckets(conn)["latency_daily"]
        assert before
        conn.execute("ALTER TABLE latency_daily DROP COLUMN raw")
        apply_schema(conn, force=True)  # the previous version's file had another digest
        assert conn.execute("SELECT count(*) FROM latency_daily WHERE raw IS NULL").fetchone() == (0,)
        assert rollup_buckets(conn)["latency_daily"] == before
        with pytest.raises(psycopg.errors.CheckViolation):  # the constraint came with the column
            conn.execute("UPDATE latency_daily SET raw = '\\x00'::bytea")
        apply_events(conn, history[len(history) // 2 :])
        conn.execute("UPDATE latency_fold SET folded_upto = %s", (T0.date() - timedelta(days=3),))
        fold_latency(conn, now=AFTER)
        assert conn.execute("SELECT count(*) FROM latency_daily WHERE raw IS NULL").fetchone() == (0,)
        assert_rollups_match(conn)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_fold_command_prints_what_it_folded(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_events(conn, coherent_history(random.Random(6), sessions=2))
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert worker_main(["fold"]) == 0
    printed = json.loads(capsys.readouterr().out)
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert printed["job"] == "fold" and printed["days"] == len(days_with_latencies(conn)) > 0
        assert watermark(conn) == fold_target(datetime.now(UTC)).isoformat()
        assert_rollups_match(conn)
        runs = conn.execute("SELECT details FROM maintenance_runs WHERE job = 'fold'").fetchall()
        assert len(runs) == 1 and runs[0][0]["days"] == printed["days"]


def test_bad_arguments_are_refused(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match="chunk_days: must be at least 1, got 0"):
        fold_latency(conn, chunk_days=0)
    with pytest.raises(ValueError, match="grace: must not be negative"):
        fold_latency(conn, grace=timedelta(hours=-1))
