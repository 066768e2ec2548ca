"""Reconcile with real Redis hints and PostgreSQL: the seed's test, liveness, grace, late events
winning over the guess, and races with workers and with other reconcile runs."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis

from contract.events import (
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundCompressed,
    RoundStarted,
    SessionCompleted,
    SessionStarted,
    TokenUsage,
    ToolStarted,
)
from tests.engine.histories import coherent_history, deliveries
from tests.engine.reference import SeedReference, database_tables
from tests.engine.rollups import assert_rollups_match
from tests.maintenance.helpers import aggregate_drift, complete_history, maintenance_settings, runs
from worker.engine.apply import apply_events
from worker.maintenance.jobs import run_reconcile
from worker.maintenance.reconcile import HintSnapshot, read_hints, reconcile
from worker.read import queries
from worker.runs import lock_key

T = datetime(2026, 2, 12, 9, 0, 0, tzinfo=UTC)
NOW = T + timedelta(hours=1)
GRACE = timedelta(minutes=10)


def usage(p: int, c: int) -> TokenUsage:
    return TokenUsage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


def one(conn: psycopg.Connection, sql: str, *args: object) -> tuple[Any, ...]:
    row = conn.execute(sql, args).fetchone()
    assert row is not None, (sql, args)
    return tuple(row)


def test_seed_reconciles_stale_running_sessions_rounds_and_forwards(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    # storage_reconciles_stale_running_sessions_rounds_and_forwards, with the hints in Redis.
    apply_events(
        conn,
        [
            SessionStarted(event_id="e1", occurred_at=T, session_id="stale-await", model="gpt-4"),
            RoundStarted(
                event_id="e2", occurred_at=T, round_id="round-await", session_id="stale-await", model="gpt-4"
            ),
            SessionStarted(event_id="e3", occurred_at=T, session_id="stale-complete", model="gpt-4"),
            RoundStarted(
                event_id="e4",
                occurred_at=T,
                round_id="round-complete",
                session_id="stale-complete",
                model="gpt-4",
            ),
            ForwardStarted(
                event_id="e5",
                occurred_at=T,
                forward_id="forward-pending",
                endpoint="/v1/chat/completions",
                model="gpt-4",
                is_stream=False,
            ),
        ],
    )
    settings = maintenance_settings(db_url, redis_url, key_prefix)
    redis_client.zadd(settings.keys.awaiting_sessions, {"stale-await": T.timestamp()})

    details = run_reconcile(settings, now=NOW)

    sessions = {s.session_id: s for s in queries.sessions(conn)}
    assert sessions["stale-await"].status == "awaiting_response"
    assert sessions["stale-complete"].status == "completed"
    # Not the seed's: completed_at is the last activity (T), and the mark says when reconcile ran.
    assert sessions["stale-await"].completed_at == sessions["stale-complete"].completed_at == T
    marks = conn.execute("SELECT DISTINCT reconciled_at FROM session_metrics").fetchall()
    assert marks == [(NOW,)]
    for session_id in ("stale-await", "stale-complete"):
        detail = queries.session_detail(conn, session_id)
        assert detail is not None
        assert (detail.rounds[0].status, detail.rounds[0].error) == ("error", "reconciled_stale_round")
    forwards = queries.forward_requests(conn)
    assert [(f.status, f.error) for f in forwards] == [("error", "reconciled_stale_forward")]
    fs = queries.forward_summary(conn)
    assert (fs.total_requests, fs.successful_requests, fs.failed_requests) == (1, 0, 1)
    summary = queries.summary(conn)
    # Not the seed's either: the seed counted them as awaiting (1) and completed (1); they are
    # counted apart, so that a crashed agent is never counted as a completion.
    assert (
        summary.total_sessions,
        summary.active_sessions,
        summary.awaiting_response_sessions,
        summary.completed_sessions,
        summary.error_sessions,
        summary.cancelled_sessions,
        summary.reconciled_sessions,
    ) == (2, 0, 0, 0, 0, 0, 2)
    # Recorded, with the counts.
    assert {
        k: details[k] for k in ("rounds", "forwards", "sessions_completed", "sessions_awaiting", "reconciled")
    } == {"rounds": 2, "forwards": 1, "sessions_completed": 1, "sessions_awaiting": 1, "reconciled": 5}
    (recorded,) = runs(conn, "reconcile")
    assert recorded["reconciled"] == 5 and recorded["awaiting_hints"] == 1
    # A second run finds nothing left.
    assert run_reconcile(settings, now=NOW)["reconciled"] == 0


def _two_sessions(conn: psycopg.Connection, at: datetime) -> None:
    apply_events(
        conn,
        [
            SessionStarted(event_id="a1", occurred_at=at, session_id="alive", model="m"),
            RoundStarted(event_id="a2", occurred_at=at, round_id="alive-r", session_id="alive", model="m"),
            SessionStarted(event_id="d1", occurred_at=at, session_id="dead", model="m"),
            RoundStarted(event_id="d2", occurred_at=at, round_id="dead-r", session_id="dead", model="m"),
        ],
    )


def test_live_heartbeat_is_untouched_expired_one_is_reconciled(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    _two_sessions(conn, T)
    settings = maintenance_settings(db_url, redis_url, key_prefix)
    redis_client.zadd(
        settings.keys.active_sessions, {"alive": NOW.timestamp() + 60, "dead": NOW.timestamp() - 1}
    )
    assert read_hints(redis_client, settings.keys, NOW) == HintSnapshot(active=frozenset({"alive"}))

    details = run_reconcile(settings, now=NOW)

    status = dict(conn.execute("SELECT session_id, status FROM session_metrics").fetchall())
    rounds = dict(conn.execute("SELECT round_id, status FROM round_metrics").fetchall())
    assert status == {"alive": "running", "dead": "completed"}
    assert rounds == {"alive-r": "running", "dead-r": "error"}
    assert (details["sessions_completed"], details["rounds"], details["active_hints"]) == (1, 1, 1)


def test_only_rows_idle_longer_than_the_grace_are_touched(conn: psycopg.Connection) -> None:
    recent = NOW - GRACE / 2
    _two_sessions(conn, T)
    apply_events(
        conn,
        [
            RoundCompressed(
                event_id="c1", occurred_at=recent, round_id="dead-r", session_id="dead", tokens_saved=1
            ),
            SessionStarted(event_id="n1", occurred_at=recent, session_id="new", model="m"),
            RoundStarted(event_id="n2", occurred_at=recent, round_id="new-r", session_id="new", model="m"),
            ForwardStarted(
                event_id="f1",
                occurred_at=recent,
                forward_id="new-f",
                endpoint="/e",
                model="m",
                is_stream=True,
            ),
            # A stub: a round event whose session's start has not arrived. Never reconciled as a session.
            RoundCompressed(
                event_id="s1", occurred_at=T, round_id="stub-r", session_id="stub", tokens_saved=3
            ),
        ],
    )
    counts = reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)
    status = dict(conn.execute("SELECT session_id, status FROM session_metrics").fetchall())
    rounds = dict(conn.execute("SELECT round_id, status FROM round_metrics").fetchall())
    forwards = dict(conn.execute("SELECT forward_id, status FROM forward_request_metrics").fetchall())
    # "dead" had an event within the grace (on its round, even): the session and that round wait,
    # although the round started long ago (it was reconciled to an error while in use, once).
    assert status == {"alive": "completed", "dead": "running", "new": "running", "stub": "running"}
    # stub-r has no start: its session's last event (T, long ago) says it is stale.
    assert rounds == {"alive-r": "error", "dead-r": "running", "new-r": "running", "stub-r": "error"}
    assert forwards == {"new-f": "pending"}
    assert (counts["sessions_completed"], counts["rounds"], counts["forwards"]) == (1, 2, 0)


def test_late_real_events_override_the_guess_and_redeliveries_do_not(conn: psycopg.Connection) -> None:
    history = [
        SessionStarted(event_id="s-start", occurred_at=T, session_id="s", model="m"),
        RoundStarted(event_id="r-start", occurred_at=T, round_id="r", session_id="s", model="m"),
        RoundStarted(event_id="r2-start", occurred_at=T, round_id="r2", session_id="s", model="m"),
        ForwardStarted(
            event_id="f-start", occurred_at=T, forward_id="f", endpoint="/e", model="m", is_stream=False
        ),
        ForwardStarted(
            event_id="g-start", occurred_at=T, forward_id="g", endpoint="/e", model="m", is_stream=False
        ),
    ]
    apply_events(conn, history)
    assert reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)["reconciled"] == 5  # s, r, r2, f, g

    # Redelivered starts (the same events) must not undo the reconciliation.
    apply_events(conn, history)
    assert one(conn, "SELECT status, completed_at, reconciled_at FROM session_metrics") == (
        "completed",
        T,
        NOW,
    )
    assert one(conn, "SELECT status, error FROM round_metrics WHERE round_id = 'r'") == (
        "error",
        "reconciled_stale_round",
    )
    assert one(conn, "SELECT status, error FROM forward_request_metrics WHERE forward_id = 'f'") == (
        "error",
        "reconciled_stale_forward",
    )

    # The real completions were still in the stream: each one wins, however late it arrives.
    late = [
        RoundCompleted(
            event_id="r-done",
            occurred_at=T + timedelta(minutes=1),
            round_id="r",
            session_id="s",
            status="success",
            usage=usage(10, 5),
            prompt_cached_tool_outputs=2,
        ),
        ForwardCompleted(
            event_id="f-done",
            occurred_at=T + timedelta(minutes=2),
            forward_id="f",
            status="success",
            status_code=200,
            usage=usage(3, 4),
        ),
        SessionCompleted(
            event_id="s-done", occurred_at=T + timedelta(minutes=3), session_id="s", status="cancelled"
        ),
    ]
    for ev in late:
        apply_events(conn, [ev])
    history += late
    # Rows that never got a real completion (r2, g) keep the guess; everything else is the seed's.
    expected = SeedReference.of(history).tables()
    guesses = (
        ("round_metrics", "round_id", "r2", "reconciled_stale_round"),
        ("forward_request_metrics", "forward_id", "g", "reconciled_stale_forward"),
    )
    for table, key, guessed, error in guesses:
        for row in expected[table]:
            if row[key] == guessed:
                row.update(
                    status="error", completed_at=NOW if table.startswith("forward") else T, error=error
                )
    assert database_tables(conn) == expected
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)

    # A later real restart re-opens the session: the guess ranks below every later event.
    apply_events(
        conn,
        [
            SessionStarted(
                event_id="s-again", occurred_at=T + timedelta(minutes=4), session_id="s", model="m2"
            )
        ],
    )
    assert one(conn, "SELECT status, completed_at, model FROM session_metrics") == ("running", None, "m2")


def test_same_instant_completion_still_beats_the_guess(conn: psycopg.Connection) -> None:
    apply_events(
        conn,
        [
            SessionStarted(event_id="zzz", occurred_at=T, session_id="s", model="m"),
            ForwardStarted(
                event_id="zzz2", occurred_at=T, forward_id="f", endpoint="/e", model="m", is_stream=False
            ),
        ],
    )
    reconcile(conn, HintSnapshot(awaiting=frozenset({"s"})), now=NOW, grace=GRACE)
    assert one(conn, "SELECT status FROM session_metrics") == ("awaiting_response",)
    apply_events(
        conn,
        [
            SessionCompleted(event_id="aaa", occurred_at=T, session_id="s", status="error"),
            ForwardCompleted(event_id="aaa2", occurred_at=T, forward_id="f", status="timeout"),
        ],
    )
    assert one(conn, "SELECT status, completed_at FROM session_metrics") == ("error", T)
    assert one(conn, "SELECT status, error, completed_at FROM forward_request_metrics") == (
        "timeout",
        None,
        T,
    )


def _reconcile_loop(url: str, stop: threading.Event, totals: list[int], errors: list[BaseException]) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as c:
            while not stop.is_set():
                # Grace 0 and no heartbeats: everything running looks dead, the worst case.
                n = reconcile(c, HintSnapshot(), now=datetime.now(UTC), grace=timedelta(0), chunk_size=7)
                totals.append(n["reconciled"])
    except Exception as exc:
        errors.append(exc)


def test_reconcile_racing_workers_draining_a_stream_loses_no_event(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    from tests.ingest.helpers import publish, settings
    from worker.ingest.consumer import Worker

    rng = random.Random(17)
    history = complete_history(
        [ev for i in range(40) for ev in coherent_history(rng, sessions=3, forwards=2, prefix=f"h{i}-")]
    )
    s = settings(db_url, redis_url, key_prefix, batch_size=25)
    publish(redis_client, s.stream, deliveries(rng, history, max_copies=2))
    workers = [Worker(s.with_(consumer=f"w{i}"), handle_signals=False) for i in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"burst": True}) for w in workers]
    stop, totals, errors = threading.Event(), [], []  # type: ignore[var-annotated]
    reconciler = threading.Thread(target=_reconcile_loop, args=(db_url, stop, totals, errors))
    reconciler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stop.set()
    reconciler.join(timeout=30)

    assert not errors
    assert sum(totals) > 0, "the race was not exercised: nothing was ever reconciled"
    assert all(w.totals.dead_lettered == 0 for w in workers)
    # Every real event won over every guess: exactly the seed's state, and nothing left to guess.
    assert database_tables(conn) == SeedReference.of(history).tables()
    assert reconcile(conn, HintSnapshot(), now=datetime.now(UTC), grace=timedelta(0))["reconciled"] == 0


def _stale_rows(conn: psycopg.Connection, n: int) -> int:
    events: list[Any] = []
    for i in range(n):
        events += [
            SessionStarted(event_id=f"s{i}", occurred_at=T, session_id=f"s{i:04d}", model="m"),
            RoundStarted(
                event_id=f"r{i}", occurred_at=T, round_id=f"r{i:04d}", session_id=f"s{i:04d}", model="m"
            ),
            ForwardStarted(
                event_id=f"f{i}",
                occurred_at=T,
                forward_id=f"f{i:04d}",
                endpoint="/e",
                model="m",
                is_stream=False,
            ),
        ]
    apply_events(conn, events)
    return 3 * n


def test_concurrent_reconciles_do_the_work_once(db_url: str, conn: psycopg.Connection) -> None:
    stale = _stale_rows(conn, 300)
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                barrier.wait()
                results.append(
                    reconcile(c, HintSnapshot(), now=NOW, grace=GRACE, chunk_size=10)["reconciled"]
                )
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # Even without the run lock, SKIP LOCKED and the re-checked condition reconcile each row once.
    assert not errors and sum(results) == stale
    assert one(conn, "SELECT count(*) FROM round_metrics WHERE completion_version = ''") == (300,)


def test_two_runs_at_once_one_skips(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, conn: psycopg.Connection
) -> None:
    stale = _stale_rows(conn, 50)
    settings = maintenance_settings(db_url, redis_url, key_prefix)
    schema = one(conn, "SELECT current_schema()")[0]
    with psycopg.connect(db_url, autocommit=True) as other:  # another run, in the middle of its work
        assert one(other, "SELECT pg_try_advisory_lock(%s)", lock_key("reconcile", schema)) == (True,)
        assert run_reconcile(settings, now=NOW) == {"skipped": True}
        assert one(conn, "SELECT count(*) FROM round_metrics WHERE status = 'running'") == (50,)
    # The holder went away (its connection closed): the next run does the work.

    barrier = threading.Barrier(3)
    results: list[dict[str, Any]] = []

    def run() -> None:
        barrier.wait()
        results.append(run_reconcile(settings, now=NOW))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 3
    assert sum(r.get("reconciled", 0) for r in results) == stale
    recorded = runs(conn, "reconcile")
    assert len(recorded) == 4 and recorded[0] == {"job": "reconcile", "skipped": True}
    assert sum(r.get("reconciled", 0) for r in recorded) == stale


def test_without_hints_there_is_no_reconcile(db_url: str, key_prefix: str, conn: psycopg.Connection) -> None:
    _two_sessions(conn, T)
    settings = maintenance_settings(db_url, "redis://127.0.0.1:1/0", key_prefix)  # nothing listens there
    with pytest.raises(redis.ConnectionError):
        run_reconcile(settings, now=NOW)
    assert one(conn, "SELECT count(*) FROM session_metrics WHERE status = 'running'") == (2,)
    (failed,) = runs(conn, "reconcile")
    assert "ConnectionError" in failed["error"]


def test_a_round_with_a_recent_tool_call_is_not_stale(conn: psycopg.Connection) -> None:
    """Started before the grace, but a tool call began in it a minute ago: the agent is working."""
    apply_events(
        conn,
        [
            SessionStarted(event_id="s", occurred_at=NOW - 2 * GRACE, session_id="s", model="m"),
            RoundStarted(
                event_id="r",
                occurred_at=NOW - GRACE - timedelta(minutes=5),
                round_id="r",
                session_id="s",
                model="m",
            ),
            ToolStarted(
                event_id="t",
                occurred_at=NOW - timedelta(minutes=1),
                tool_call_id="t",
                round_id="r",
                session_id="s",
                tool_name="grep",
            ),
        ],
    )
    assert reconcile(conn, HintSnapshot(), now=NOW, grace=GRACE)["reconciled"] == 0
    assert conn.execute("SELECT status FROM round_metrics").fetchone() == ("running",)
