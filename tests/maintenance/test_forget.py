"""Forgetting sessions on request: every row and hint of them goes, nothing else, the roll-ups stay
what the base tables say, twice is the same as once, and it runs next to workers applying events."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import redis

from contract.events import (
    Event,
    ForwardStarted,
    RoundCompleted,
    RoundCompressed,
    RoundStarted,
    SessionStarted,
    TokenUsage,
    ToolCompleted,
    ToolStarted,
)
from contract.keys import Keys
from tests.engine.histories import coherent_history
from tests.engine.reference import apply_retrying
from tests.engine.rollups import assert_rollups_match, rollup_buckets
from tests.maintenance.helpers import aggregate_drift
from worker.engine.apply import apply_events
from worker.maintenance.forget import Forgotten, forget_sessions

T = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _session(sid: str, rounds: int) -> list[Event]:
    events: list[Event] = [SessionStarted(event_id=f"{sid}-s", occurred_at=T, session_id=sid, model="m")]
    for i in range(rounds):
        rid, tid = f"{sid}-r{i}", f"{sid}-r{i}-t"
        at = T + timedelta(seconds=i)
        events += [
            RoundStarted(event_id=f"{rid}-s", occurred_at=at, round_id=rid, session_id=sid, model="m"),
            ToolStarted(
                event_id=f"{tid}-s",
                occurred_at=at,
                tool_call_id=tid,
                round_id=rid,
                session_id=sid,
                tool_name="sh",
            ),
            ToolCompleted(
                event_id=f"{tid}-c",
                occurred_at=at,
                tool_call_id=tid,
                round_id=rid,
                session_id=sid,
                success=True,
            ),
            RoundCompressed(
                event_id=f"{rid}-z", occurred_at=at, round_id=rid, session_id=sid, tokens_saved=3
            ),
            RoundCompleted(
                event_id=f"{rid}-c",
                occurred_at=at,
                round_id=rid,
                session_id=sid,
                status="success",
                usage=TokenUsage(prompt_tokens=2, completion_tokens=3, total_tokens=5),
            ),
        ]
    return events


def _ids(conn: psycopg.Connection, table: str, key: str) -> set[str]:
    return {k for (k,) in conn.execute(f"SELECT {key} FROM {table}").fetchall()}


def test_forget_deletes_one_sessions_rows_and_hints_and_nothing_else(
    conn: psycopg.Connection, redis_client: redis.Redis, key_prefix: str
) -> None:
    keys = Keys(stream=f"{key_prefix}:events")
    apply_events(conn, _session("gone", 2) + _session("kept", 1))
    # Rows of the forgotten session that arrived before its start (a stub round of it).
    apply_events(
        conn,
        [RoundCompressed(event_id="x", occurred_at=T, round_id="stub", session_id="gone", tokens_saved=1)],
    )
    redis_client.zadd(keys.active_sessions, {"gone": T.timestamp(), "kept": T.timestamp()})
    redis_client.zadd(keys.awaiting_sessions, {"gone": T.timestamp()})
    kept_before = conn.execute("SELECT xmin::text FROM session_metrics WHERE session_id = 'kept'").fetchone()

    done = forget_sessions(conn, redis_client, keys, ["gone"])

    assert done == Forgotten(sessions=1, rounds=3, tool_calls=2, forwards=0, hints=2)
    assert done.describe() == "forgot 1 session, 3 rounds, 2 tool calls, 0 forwards, 2 hints"
    assert _ids(conn, "session_metrics", "session_id") == {"kept"}
    assert _ids(conn, "round_metrics", "round_id") == {"kept-r0"}
    assert _ids(conn, "tool_call_metrics", "tool_call_id") == {"kept-r0-t"}
    assert (
        conn.execute("SELECT xmin::text FROM session_metrics WHERE session_id = 'kept'").fetchone()
        == kept_before
    )
    assert redis_client.zrange(keys.active_sessions, 0, -1) == [b"kept"]
    assert redis_client.zrange(keys.awaiting_sessions, 0, -1) == []
    assert_rollups_match(conn)
    assert rollup_buckets(conn)["session_rollup"] == {
        (T.date(), "m", "running", False): (1, 1, 2, 3, 5, 1, 0, 1, 3)
    }
    assert aggregate_drift(conn) == []

    # Idempotent: once more, and ids never seen, forget nothing and say so.
    again = forget_sessions(conn, redis_client, keys, ["gone", "gone", "never-seen"])
    assert again == Forgotten()
    assert again.describe() == "forgot 0 sessions, 0 rounds, 0 tool calls, 0 forwards, 0 hints"
    assert forget_sessions(conn, redis_client, keys, []) == Forgotten()
    assert_rollups_match(conn)


def test_forwards_linked_to_the_session_go_with_it(
    conn: psycopg.Connection, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Forwards linked to the session (forward.started's optional session_id) go with it."""
    apply_events(
        conn,
        _session("gone", 1)
        + [
            ForwardStarted(
                event_id=f"f{i}",
                occurred_at=T,
                forward_id=f"f{i}",
                endpoint="/e",
                model="m",
                is_stream=False,
                session_id="gone" if i < 2 else None,
            )
            for i in range(3)
        ],
    )

    done = forget_sessions(conn, redis_client, Keys(stream=f"{key_prefix}:events"), ["gone"], chunk_size=1)

    assert (done.sessions, done.forwards) == (1, 2)
    assert _ids(conn, "forward_request_metrics", "forward_id") == {"f2"}
    assert_rollups_match(conn)


def test_forget_in_chunks_next_to_workers_applying_the_same_sessions(
    db_url: str, conn: psycopg.Connection, redis_client: redis.Redis, key_prefix: str
) -> None:
    """No deadlock, no error, no drift: a worker's event after the forget writes its rows again, as
    for any new id, and every aggregate and roll-up still equals what its rows say."""
    rng = random.Random(31)
    history = [ev for i in range(6) for ev in coherent_history(rng, sessions=3, prefix=f"w{i}-")]
    apply_events(conn, history[: len(history) // 2])
    sessions = sorted(_ids(conn, "session_metrics", "session_id"))
    rest = history[len(history) // 2 :]
    rng.shuffle(rest)
    errors: list[BaseException] = []
    worker = threading.Thread(
        target=apply_retrying, args=(db_url, [rest[i : i + 5] for i in range(0, len(rest), 5)], errors)
    )
    worker.start()
    keys = Keys(stream=f"{key_prefix}:events")
    forgotten = [forget_sessions(conn, redis_client, keys, sessions[i::3], chunk_size=2) for i in range(3)]
    worker.join(timeout=120)
    assert not worker.is_alive() and not errors
    assert sum(f.sessions for f in forgotten) >= 1
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)
    # Forget everything, including what the worker wrote again: nothing of those sessions is left.
    every = _ids(conn, "session_metrics", "session_id") | _ids(conn, "round_metrics", "session_id")
    forget_sessions(conn, redis_client, keys, every | _ids(conn, "tool_call_metrics", "session_id"))
    assert _ids(conn, "session_metrics", "session_id") == set()
    assert _ids(conn, "round_metrics", "round_id") == set()
    assert _ids(conn, "tool_call_metrics", "tool_call_id") == set()
    assert_rollups_match(conn)
    assert rollup_buckets(conn)["session_rollup"] == {}
    assert rollup_buckets(conn)["tool_rollup"] == {}
