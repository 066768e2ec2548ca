"""Convergence: any permutation, duplication and batching of a true history, applied by any number
of concurrent appliers, leaves exactly the state of the seed applied once in true order."""

from __future__ import annotations

import random
import threading

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.histories import coherent_history, deliveries, split
from tests.engine.reference import SeedReference, apply_retrying, database_tables
from tests.engine.rollups import assert_rollups_match, reads_both_ways
from worker.engine.apply import apply_events

TABLES = (
    "session_metrics",
    "round_metrics",
    "tool_call_metrics",
    "forward_request_metrics",
    "execute_sync_mismatch_metrics",
    "applied_counter_events",
)


def _reset(conn: psycopg.Connection) -> None:
    for table in TABLES:  # DELETE beats TRUNCATE on tables this small
        conn.execute(f"DELETE FROM {table}")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False))
def test_any_order_duplication_and_batching_converges(conn: psycopg.Connection, rng: random.Random) -> None:
    _reset(conn)
    history = coherent_history(rng)
    for batch in split(rng, deliveries(rng, history)):
        apply_events(conn, batch)
    assert database_tables(conn) == SeedReference.of(history).tables()
    assert_rollups_match(conn)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False))
def test_reads_from_rollups_equal_the_reads_from_base_tables(
    db_url: str, conn: psycopg.Connection, rng: random.Random
) -> None:
    _reset(conn)
    history = coherent_history(rng)
    for batch in split(rng, deliveries(rng, history)):
        apply_events(conn, batch)
    from_rollups, from_base = reads_both_ways(db_url)
    assert from_rollups == from_base


def test_redelivering_everything_again_changes_nothing(conn: psycopg.Connection) -> None:
    rng = random.Random(7)
    history = coherent_history(rng, sessions=4)
    apply_events(conn, history)
    before = database_tables(conn)
    apply_events(conn, list(reversed(history)))
    for ev in history:
        apply_events(conn, [ev])
    assert database_tables(conn) == before == SeedReference.of(history).tables()


def test_concurrent_appliers_on_the_same_sessions_converge(db_url: str, conn: psycopg.Connection) -> None:
    rng = random.Random(42)
    history = [ev for i in range(30) for ev in coherent_history(rng, sessions=5, prefix=f"h{i}-")]
    appliers = 4
    errors: list[Exception] = []
    deadlocks_before = conn.execute(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()[0]
    threads = []
    for _ in range(appliers):
        # Every applier gets every event (shuffled, duplicated), so all of them fight over every row.
        delivered = deliveries(rng, history, max_copies=2)
        batches = [delivered[i : i + 60] for i in range(0, len(delivered), 60)]
        threads.append(threading.Thread(target=apply_retrying, args=(db_url, batches, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert database_tables(conn) == SeedReference.of(history).tables()
    assert_rollups_match(conn)
    deadlocks = conn.execute(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()[0]
    assert deadlocks == deadlocks_before
