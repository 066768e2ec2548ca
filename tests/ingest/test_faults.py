"""Crashes, lost connections and shutdowns lose nothing and double-count nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import psycopg
import pytest
import redis
from psycopg import errors as pgerrors

from contract.events import SyncMismatch
from tests.engine.histories import T0, coherent_history, deliveries
from tests.engine.reference import SeedReference, database_tables
from tests.ingest.helpers import drain, log_of, publish, settings, spawn_worker, wait_consuming, wait_for
from worker.engine.apply import apply_events
from worker.errors import PermanentError, TransientError, translate
from worker.ingest.consumer import Worker

pytestmark = pytest.mark.drill


def _delivered(client: redis.Redis, stream: str, group: str) -> int:
    """Entries delivered to the group so far (Redis 6.2 has no entries-read counter)."""
    groups = [g for g in client.xinfo_groups(stream) if g["name"] == group.encode()]
    if not groups:
        return 0
    return len(client.xrange(stream, "-", groups[0]["last-delivered-id"]))


def _sid(raw: bytes) -> tuple[int, ...]:
    return tuple(int(part) for part in raw.split(b"-"))


def test_sigkill_of_one_of_three_workers_mid_run(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    rng = random.Random(21)
    history = [ev for i in range(60) for ev in coherent_history(rng, sessions=3, prefix=f"h{i}-")]
    s = settings(db_url, redis_url, key_prefix)
    published = publish(redis_client, s.stream, deliveries(rng, history))
    procs = [
        spawn_worker(
            s.with_(consumer=f"w{i}"),
            "--burst",
            "--consumer",
            f"w{i}",
            "--batch-size",
            "25",
            "--claim-idle-ms",
            "1000",
        )
        for i in range(3)
    ]
    try:
        wait_for(lambda: _delivered(redis_client, s.stream, s.group) > published // 4)
        procs[0].send_signal(signal.SIGKILL)
        assert procs[0].wait(timeout=10) == -signal.SIGKILL
        for p in procs[1:]:
            assert p.wait(timeout=120) == 0, log_of(p)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert redis_client.xpending(s.stream, s.group)["pending"] == 0
    assert database_tables(conn) == SeedReference.of(history).tables()


def test_database_connections_terminated_during_a_run(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    rng = random.Random(8)
    history = [ev for i in range(60) for ev in coherent_history(rng, sessions=3, prefix=f"h{i}-")]
    s = settings(db_url, redis_url, key_prefix, batch_size=20, consumer="terminated")
    publish(redis_client, s.stream, deliveries(rng, history))
    worker = Worker(s, handle_signals=False)
    runner = threading.Thread(target=worker.run, kwargs={"burst": True})
    runner.start()
    kills = 0
    while runner.is_alive() and kills < 5:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'metrics-worker:terminated' AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        kills += killed
        time.sleep(0.05)
    runner.join(timeout=120)
    assert not runner.is_alive()
    assert kills >= 1, "the run ended before a connection could be terminated"
    assert database_tables(conn) == SeedReference.of(history).tables()


def test_sigterm_exits_promptly_and_acks_exactly_what_was_committed(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    # One event per distinct reason: each committed event is one mismatch row, so the database
    # says exactly which entries were committed.
    events = [
        SyncMismatch(event_id=f"m{i}", occurred_at=T0 + timedelta(microseconds=i), reason=f"reason-{i}")
        for i in range(6_000)
    ]
    s = settings(db_url, redis_url, key_prefix, consumer="graceful")
    publish(redis_client, s.stream, events)
    proc = spawn_worker(s, "--batch-size", "50", "--consumer", "graceful")
    wait_consuming(redis_client, s.stream, s.group, "graceful")
    wait_for(lambda: conn.execute("SELECT count(*) FROM execute_sync_mismatch_metrics").fetchone()[0] > 500)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=10) == 0, log_of(proc)
    assert time.monotonic() - started < 5
    committed = {r for (r,) in conn.execute("SELECT reason FROM execute_sync_mismatch_metrics")}
    # Every entry is acked, pending (delivered, not acked) or not delivered yet; acked entries may
    # have been trimmed from the stream already (the worker trims what every group acknowledged).
    pending = {row["message_id"] for row in redis_client.xpending_range(s.stream, s.group, "-", "+", 100_000)}
    (group,) = [g for g in redis_client.xinfo_groups(s.stream) if g["name"] == s.group.encode()]
    last = group["last-delivered-id"]
    not_acked = {
        json.loads(fields[b"event"])["reason"]
        for entry_id, fields in redis_client.xrange(s.stream)
        if entry_id in pending or _sid(entry_id) > _sid(last)
    }
    acked = {ev.reason for ev in events} - not_acked
    assert committed == acked
    assert len(committed) < len(events)
    drain(s)  # and a later worker finishes the rest
    assert conn.execute("SELECT count(*) FROM execute_sync_mismatch_metrics").fetchone()[0] == len(events)


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (pgerrors.NumericValueOutOfRange, True),  # the data: dead-letter after bisection
        (pgerrors.NotNullViolation, True),
        (pgerrors.ProgramLimitExceeded, True),
        (pgerrors.ReadOnlySqlTransaction, False),  # a standby after a failover: wait
        (pgerrors.UndefinedTable, False),  # a table dropped or renamed: wait for `metrics-worker schema`
        (pgerrors.InsufficientPrivilege, False),
        (pgerrors.DeadlockDetected, False),
        (pgerrors.AdminShutdown, False),
    ],
)
def test_only_errors_about_the_data_dead_letter_a_batch(error: type[psycopg.Error], permanent: bool) -> None:
    """Good events were dead-lettered as 'refused' when the database was read-only or missing a
    table (found in review): only SQLSTATE classes 22, 23 and 54 are about the data."""
    translated = translate(error("x"))
    assert isinstance(translated, PermanentError if permanent else TransientError), translated


def test_schema_command_repairs_a_table_dropped_after_it_was_applied(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE session_metrics")
    env = dict(os.environ, DATABASE_URL=db_url)
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "schema"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('session_metrics') IS NOT NULL").fetchone() == (True,)


def test_sigterm_ends_a_worker_whose_batch_waits_on_a_row_lock(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    """Another session holds a row the batch needs: the worker hung until it was released, SIGTERM
    or not (found in review). Its lock_timeout ends the wait; the batch stays pending."""
    from contract.events import SessionStarted

    consumer = f"locked-{key_prefix[-12:]}"  # concurrent suites on the same server have their own
    s = settings(db_url, redis_url, key_prefix, consumer=consumer)
    with psycopg.connect(db_url, autocommit=True) as setup:
        apply_events(setup, [SessionStarted(event_id="s0", occurred_at=T0, session_id="held", model="m")])
    holder = psycopg.connect(db_url)
    try:
        holder.execute("SELECT 1 FROM session_metrics WHERE session_id = 'held' FOR UPDATE")
        publish(
            redis_client,
            s.stream,
            [SessionStarted(event_id="s1", occurred_at=T0, session_id="held", model="m2")],
        )
        proc = spawn_worker(s, "--consumer", consumer)
        wait_consuming(redis_client, s.stream, s.group, consumer)
        wait_for(  # this worker's connection waits on the lock (not another suite's)
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND application_name = %s",
                    (f"metrics-worker:{consumer}"[:63],),
                ).fetchone()[0]
                > 0
            )
        )
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=20) == 0, log_of(proc)
        assert time.monotonic() - started < 10
        assert redis_client.xpending(s.stream, s.group)["pending"] == 1  # not acked: redelivered later
    finally:
        holder.close()


def test_a_group_deleted_under_a_running_worker_is_created_again(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    """It made the worker exit 2 (found in review); a restart healed it, a supervisor had to."""
    s = settings(db_url, redis_url, key_prefix, consumer="survivor", block_ms=50)
    events = [SyncMismatch(event_id=f"g{i}", occurred_at=T0, reason=f"g{i}") for i in range(20)]
    publish(redis_client, s.stream, events[:10])
    worker = Worker(s, handle_signals=False)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        wait_for(
            lambda: conn.execute("SELECT count(*) FROM execute_sync_mismatch_metrics").fetchone()[0] == 10
        )
        redis_client.xgroup_destroy(s.stream, s.group)
        publish(redis_client, s.stream, events[10:])
        wait_for(
            lambda: conn.execute("SELECT count(*) FROM execute_sync_mismatch_metrics").fetchone()[0] == 20,
            timeout=30,
        )
        assert runner.is_alive()
    finally:
        worker.stop()
        runner.join(10)
    assert conn.execute("SELECT sum(count) FROM execute_sync_mismatch_metrics").fetchone() == (
        20,
    )  # once each
