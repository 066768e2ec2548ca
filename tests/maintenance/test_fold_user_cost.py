"""The user cost by session model and month (schema.sql: user_model_cost_rollup, user_cost_monthly, and
latency_fold's months_upto; worker/maintenance/fold.py: MONTHS): the per-user cost read answers
what the sessions say for any range of dates and any model or user filter: after a fold, with late
updates into folded months, folded twice, with the watermark moved back, next to a concurrent apply,
and on a database upgraded from the version keyed by (day, user_id) only."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from tests.engine.rollups import assert_rollups_match
from tests.maintenance.folding import apply_during_fold, wait_until_blocked
from worker.backfill import backfill
from worker.maintenance.fold import fold_latency
from worker.read import queries
from worker.schema import apply_schema

FIRST = datetime(2025, 11, 20, tzinfo=UTC)
MODELS = ("gpt-4", "claude-3", "llama-3")
USERS = ("ann", "bob", "cid", "dee")

#: Dates around month boundaries, the range's ends (None: open).
ENDS: tuple[date | None, ...] = (
    None, date(2025, 11, 1), date(2025, 11, 20), date(2025, 11, 30), date(2025, 12, 1), date(2025, 12, 15),
    date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 5),
    date(2026, 2, 28), date(2026, 3, 2),
)  # fmt: skip

INSERT = """
INSERT INTO session_metrics (
    session_id, model, user_id, started_at, status, updated_at, cost_usd, unpriced_rounds)
SELECT s.id, s.model, s.user_id, s.started_at, 'completed', s.started_at, s.cost, s.unpriced
FROM unnest(%(ids)s::text[], %(models)s::text[], %(users)s::text[], %(starts)s::timestamptz[],
            %(costs)s::numeric[], %(unpriced)s::int8[]) AS s(id, model, user_id, started_at, cost, unpriced)
"""

#: Late changes: a session moves model and cost, another its day, a third goes.
LATE = """
WITH changed AS (
    UPDATE session_metrics SET cost_usd = cost_usd + 0.125, model = 'claude-3'
    WHERE session_id IN ('u0003', 'u0010', 'u0042')
    RETURNING 1
), moved AS (
    UPDATE session_metrics
    SET started_at = started_at - interval '40 days', unpriced_rounds = unpriced_rounds + 1
    WHERE session_id IN ('u0020', 'u0077')
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM moved)
"""


def add_sessions(conn: psycopg.Connection[Any], rng: random.Random, n: int, prefix: str = "u") -> None:
    rows = [
        (
            f"{prefix}{i:04d}",
            rng.choice(MODELS),
            rng.choice((*USERS, None)),
            FIRST + timedelta(seconds=rng.randrange(100 * 86400)),
            Decimal(rng.randrange(0, 5000)) / 1000,
            rng.choice((0, 0, 0, 1)),
        )
        for i in range(n)
    ]
    ids, models, users, starts, costs, unpriced = (list(c) for c in zip(*rows, strict=True))
    params = {"ids": ids, "models": models, "users": users, "starts": starts, "costs": costs}
    conn.execute(INSERT, {**params, "unpriced": unpriced})


def by_user_reads(conn: psycopg.Connection[Any]) -> list[Any]:
    out = []
    for k, start in enumerate(ENDS):
        for end in ENDS[k:] if start is not None else ENDS:
            if start is not None and end is not None and end < start:
                continue
            for model in (None, "gpt-4"):
                report = queries.cost(conn, start_date=start, end_date=end, model=model, top=1000)
                out.append(((start, end, model), report.by_user))
            by_bob = queries.cost(conn, start_date=start, end_date=end, user_id="bob").by_user
            out.append(((start, end, "bob"), by_bob))
    return out


def assert_reads_exact(db_url: str) -> None:
    """Every range's per-user cost from the roll-ups equals its twin over session_metrics."""
    with psycopg.connect(db_url) as conn:  # not autocommit: the second half is rolled back
        from_rollups = by_user_reads(conn)
        conn.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        from_base = by_user_reads(conn)
        conn.rollback()
    assert from_rollups == from_base
    assert any(users for _, users in from_rollups)


def monthly_rows(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM user_cost_monthly").fetchone()
    assert row is not None
    return int(row[0])


def months_upto(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT months_upto::text FROM latency_fold").fetchone()
    assert row is not None
    return str(row[0])


def test_folded_months_late_updates_and_folding_twice_stay_exact(db_url: str) -> None:
    rng = random.Random(11)
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_sessions(conn, rng, 120)
        assert monthly_rows(conn) == 0 and months_upto(conn) == "-infinity"
        assert_rollups_match(conn)
        # one chunk (the sessions' hours from FIRST on): every month counted once
        out = fold_latency(conn, now=datetime(2026, 2, 6, 2, tzinfo=UTC), chunk_days=400)
        assert out["folded_upto"] == months_upto(conn) == "2026-02-06"
        assert out["month_rows"] == monthly_rows(conn) > 0
        assert conn.execute("SELECT DISTINCT slot FROM user_cost_monthly").fetchall() == [(0,)]
        assert_rollups_match(conn)
        assert_reads_exact(db_url)
        # late updates into folded months (and new sessions into them): the move writes the months too
        before = conn.execute("SELECT * FROM user_cost_monthly ORDER BY 1, 2, 3, 4").fetchall()
        assert conn.execute(LATE).fetchone() == (3, 2)
        add_sessions(conn, rng, 30, prefix="late")
        conn.execute("DELETE FROM session_metrics WHERE session_id IN ('u0005', 'u0050')")
        assert conn.execute("SELECT * FROM user_cost_monthly ORDER BY 1, 2, 3, 4").fetchall() != before
        assert_rollups_match(conn)
        assert_reads_exact(db_url)
        # into the next month, then again: the second finds nothing
        fold_latency(conn, now=datetime(2026, 3, 3, 2, tzinfo=UTC))
        folded = conn.execute("SELECT xmin::text, * FROM user_cost_monthly ORDER BY 2, 3, 4, 5").fetchall()
        again = fold_latency(conn, now=datetime(2026, 3, 3, 2, tzinfo=UTC))
        assert again["month_rows"] == 0 and again["folded_upto"] == "2026-03-03"
        after = conn.execute("SELECT xmin::text, * FROM user_cost_monthly ORDER BY 2, 3, 4, 5").fetchall()
        assert after == folded
        assert_rollups_match(conn)
        assert_reads_exact(db_url)


def test_a_watermark_moved_back_keeps_the_months_exact(db_url: str) -> None:
    rng = random.Random(12)
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_sessions(conn, rng, 100)
        fold_latency(conn, now=datetime(2026, 2, 20, 2, tzinfo=UTC))
        conn.execute("UPDATE latency_fold SET folded_upto = '2025-12-10'")
        conn.execute(LATE)  # days before folded_upto, and between it and months_upto
        assert_rollups_match(conn)
        assert_reads_exact(db_url)
        fold_latency(conn, now=datetime(2026, 1, 20, 2, tzinfo=UTC))  # months_upto back, to 2026-01-20
        assert months_upto(conn) == "2026-01-20"
        assert_rollups_match(conn)
        assert_reads_exact(db_url)


def test_an_apply_waits_for_the_fold_and_then_writes_the_months(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        add_sessions(applier, random.Random(13), 100)
        # a session change of a January day, while a fold that moves months_upto past it is open
        apply_during_fold(applier, folder, watcher, LATE, days=400)  # one chunk: to the target
        assert months_upto(watcher) == "2026-02-12"
        assert_rollups_match(watcher)
    assert_reads_exact(db_url)


def test_a_fold_waits_for_an_open_apply(db_url: str) -> None:
    with (
        psycopg.connect(db_url, autocommit=True) as applier,
        psycopg.connect(db_url, autocommit=True) as folder,
        psycopg.connect(db_url, autocommit=True) as watcher,
    ):
        add_sessions(applier, random.Random(14), 100)
        with applier.transaction():
            applier.execute(LATE)  # the shared lock, and the day rows, not committed yet
            at = datetime(2026, 3, 1, 2, tzinfo=UTC)
            thread = threading.Thread(target=fold_latency, args=(folder,), kwargs={"now": at})
            thread.start()
            wait_until_blocked(watcher, folder.info.backend_pid, thread)
        thread.join(10)
        assert not thread.is_alive()
        assert_rollups_match(applier)
    assert_reads_exact(db_url)


#: The previous version's tables (no hours, no user cost by model or month), in the middle of the
#: sessions' back-fill: the sessions up to u0049 counted, by day.
PREVIOUS = """
DELETE FROM session_rollup;
INSERT INTO session_rollup (day, model, status, reconciled, slot, sessions, total_rounds, total_tokens)
SELECT (started_at AT TIME ZONE 'UTC')::date, model, status, reconciled_at IS NOT NULL, 0, count(*),
       sum(total_rounds), sum(total_tokens)
FROM session_metrics WHERE started_at IS NOT NULL AND session_id <= 'u0049' GROUP BY 1, 2, 3, 4;
DELETE FROM user_cost_rollup;
INSERT INTO user_cost_rollup (day, user_id, slot, cost_usd, unpriced_rounds)
SELECT (started_at AT TIME ZONE 'UTC')::date, user_id, 0, sum(cost_usd), sum(unpriced_rounds)
FROM session_metrics WHERE user_id IS NOT NULL AND session_id <= 'u0049' GROUP BY 1, 2;
DROP TABLE session_hourly, user_model_cost_rollup, user_cost_monthly;
ALTER TABLE latency_fold DROP COLUMN months_upto;
"""


def test_an_upgraded_database_counts_its_users_by_model_and_month(db_url: str) -> None:
    """The previous version has no roll-up by model or month (nor sessions by hour): its sessions
    are counted again from zero into all of them (here from the middle of its back-fill), and the
    next fold counts the months."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_sessions(conn, random.Random(15), 100)
        fold_latency(conn, now=datetime(2026, 2, 20, 2, tzinfo=UTC))
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # the roll-ups as they were
            conn.execute(PREVIOUS)
            conn.execute("UPDATE rollup_backfill SET done = false, upto = 'u0049' WHERE entity = 'sessions'")
        apply_schema(conn, force=True)
        assert months_upto(conn) == "-infinity" and monthly_rows(conn) == 0
        for table in ("session_rollup", "user_cost_rollup", "user_model_cost_rollup"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        backfill_row = conn.execute(
            "SELECT done, upto FROM rollup_backfill WHERE entity = 'sessions'"
        ).fetchone()
        assert backfill_row == (False, None)
        assert_reads_exact(db_url)  # from the sessions meanwhile
        backfill(conn)
        assert_rollups_match(conn)
        assert_reads_exact(db_url)
        fold_latency(conn, now=datetime(2026, 2, 20, 3, tzinfo=UTC))  # the months, though no day is due
        assert months_upto(conn) == "2026-02-20" and monthly_rows(conn) > 0
        assert_rollups_match(conn)
        assert_reads_exact(db_url)
