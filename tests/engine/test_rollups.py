"""Roll-ups stay what the base tables say through prune (sessions included), reconcile (and the
reopening of what it closed), forgetting, the latency fold, and late events after them; the reads
answered from them equal the same reads over the base tables."""

from __future__ import annotations

import random
from datetime import timedelta

import psycopg
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.keys import Keys
from tests.engine.histories import T0, coherent_history, deliveries, split
from tests.engine.rollups import (
    assert_latency_within_error,
    assert_rollups_match,
    reads_both_ways,
    rollup_buckets,
)
from tests.maintenance.helpers import aggregate_drift
from worker.engine.apply import apply_events
from worker.maintenance.fold import fold_latency
from worker.maintenance.forget import forget_sessions
from worker.maintenance.prune import prune
from worker.maintenance.reconcile import HintSnapshot, reconcile
from worker.read import queries


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False))
def test_prune_reconcile_forget_and_late_events_keep_rollups_exact(
    db_url: str, redis_client: redis.Redis, key_prefix: str, rng: random.Random
) -> None:
    history = coherent_history(rng, sessions=3)
    delivered = deliveries(rng, history)
    early, late = delivered[: len(delivered) * 2 // 3], delivered[len(delivered) * 2 // 3 :]
    grace = timedelta(minutes=1)
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in ("session_metrics", "round_metrics", "tool_call_metrics", "forward_request_metrics"):
            conn.execute(f"DELETE FROM {table}")
        # latency_daily folded up to T0's date, the day after, both days or neither (schema.sql:
        # latency_fold; moved back first, which is safe, for the fold to replace the days' rows)
        conn.execute("UPDATE latency_fold SET folded_upto = '-infinity'")
        fold_latency(conn, now=T0 + timedelta(days=rng.randint(-1, 2), hours=2))
        for batch in split(rng, early):
            apply_events(conn, batch)
        now = T0 + timedelta(seconds=rng.randint(0, 40))
        reconcile(conn, HintSnapshot(), now=now + timedelta(minutes=10), grace=grace, chunk_size=2)
        assert_rollups_match(conn)
        # Retention: rounds, forwards and whole sessions quiet since the cutoff (one kept alive).
        sessions = sorted({ev.session_id for ev in history if getattr(ev, "session_id", None) is not None})
        cutoff = T0 + timedelta(seconds=rng.randint(0, 40))
        live = frozenset(rng.sample(sessions, k=rng.randint(0, 1)))
        prune(conn, cutoff=cutoff, dedupe_before=T0 - timedelta(days=1), chunk_size=2, live=live)
        assert_rollups_match(conn)
        fold_latency(conn, now=T0 + timedelta(days=rng.randint(0, 2), hours=2))  # then late events
        # Late events: some reopen what reconcile closed; a second reconcile closes them again.
        for batch in split(rng, late):
            apply_events(conn, batch)
        assert_rollups_match(conn)
        reconcile(conn, HintSnapshot(), now=now + timedelta(minutes=20), grace=grace, chunk_size=2)
        assert_rollups_match(conn)
        forget_sessions(
            conn, redis_client, Keys(stream=f"{key_prefix}:events"), rng.sample(sessions, k=rng.randint(0, 2))
        )
        assert_rollups_match(conn)
        assert aggregate_drift(conn) == []
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base
    # Any span's percentiles: within the bucket rule's error of percentile_disc over the base rows.
    with psycopg.connect(db_url, autocommit=True) as conn:
        day = T0.date()
        reads = [queries.latency(conn), queries.latency(conn, start_date=day, end_date=day)]
        reads += [
            queries.latency(conn, hours=rng.randint(1, 168), now=T0 + timedelta(hours=rng.randint(-2, 3)))
        ]
        for read in reads:
            assert_latency_within_error(conn, read)


def test_a_redelivered_batch_moves_no_rollup_row(conn: psycopg.Connection) -> None:
    history = coherent_history(random.Random(3), sessions=4)
    apply_events(conn, history)
    tables = {
        "session_rollup": "SELECT xmin::text, * FROM session_rollup ORDER BY 2, 3, 4, 5",
        "round_hourly": "SELECT xmin::text, * FROM round_hourly ORDER BY 2, 3, 4",
        "latency_hourly": "SELECT xmin::text, * FROM latency_hourly ORDER BY 2, 3, 4, 5",
        "latency_daily": "SELECT xmin::text, * FROM latency_daily ORDER BY 2, 3, 4, 5",
    }
    before = {table: conn.execute(sql).fetchall() for table, sql in tables.items()}
    apply_events(conn, history)
    apply_events(conn, list(reversed(history)))
    assert {table: conn.execute(sql).fetchall() for table, sql in tables.items()} == before
    assert all(rollup_buckets(conn)[table] for table in tables)


def test_each_writing_connection_has_a_slot_of_its_own(db_url: str) -> None:
    history = coherent_history(random.Random(5), sessions=2)
    with psycopg.connect(db_url, autocommit=True) as a, psycopg.connect(db_url, autocommit=True) as b:
        slots = {c.execute("SELECT metrics_rollup_slot()").fetchone()[0] for c in (a, b)}
        assert len(slots) == 2
        apply_events(a, history[: len(history) // 2])
        apply_events(b, history[len(history) // 2 :])
        used = {row[0] for row in a.execute("SELECT DISTINCT slot FROM session_rollup").fetchall()}
        assert used <= slots
        # A rolled-back transaction undoes the remembered setting; the slot is found again.
        with a.transaction(force_rollback=True):
            a.execute("SELECT set_config('metrics.rollup_slot', '', true)")
            again = a.execute("SELECT metrics_rollup_slot()").fetchone()[0]
        assert again == a.execute("SELECT metrics_rollup_slot()").fetchone()[0]
        assert again in slots
        assert_rollups_match(a)
