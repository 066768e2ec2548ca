"""Prune with real PostgreSQL and Redis: the seed's prune_rounds_before (rounds, their tool calls,
the touched sessions' aggregates and only those), retention of everything else, in chunks, and
next to workers applying events."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis

from contract.events import (
    Event,
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundCompressed,
    RoundStarted,
    SessionMessageCount,
    SessionStarted,
    SyncMismatch,
    TokenUsage,
    ToolCompleted,
    ToolStarted,
)
from tests.engine.histories import coherent_history, deliveries
from tests.engine.reference import SeedReference, apply_retrying, database_tables
from tests.engine.rollups import assert_rollups_match
from tests.maintenance.helpers import aggregate_drift, prune_settings, runs
from worker.engine.apply import apply_events
from worker.maintenance.jobs import run_prune
from worker.maintenance.prune import prune

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=100)
NEW = NOW - timedelta(days=1)


def usage(p: int, c: int) -> TokenUsage:
    return TokenUsage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


def _round(rid: str, sid: str, at: datetime, tokens: int, *, tools: int = 1) -> list[Event]:
    events: list[Event] = [
        RoundStarted(event_id=f"{rid}-s", occurred_at=at, round_id=rid, session_id=sid, model="m")
    ]
    for i in range(tools):
        tid = f"{rid}-t{i}"
        events += [
            ToolStarted(
                event_id=f"{tid}-s",
                occurred_at=at,
                tool_call_id=tid,
                round_id=rid,
                session_id=sid,
                tool_name="shell",
            ),
            ToolCompleted(
                event_id=f"{tid}-c",
                occurred_at=at,
                tool_call_id=tid,
                round_id=rid,
                session_id=sid,
                success=True,
            ),
        ]
    events += [
        RoundCompressed(event_id=f"{rid}-z", occurred_at=at, round_id=rid, session_id=sid, tokens_saved=7),
        RoundCompleted(
            event_id=f"{rid}-c",
            occurred_at=at,
            round_id=rid,
            session_id=sid,
            status="success",
            usage=usage(tokens, tokens),
            prompt_cached_tool_outputs=1,
        ),
    ]
    return events


def _session_row(conn: psycopg.Connection, sid: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT total_rounds, total_tokens, tool_call_count, total_compression_events, total_tokens_saved, "
        "prompt_cached_tool_outputs, xmin::text FROM session_metrics WHERE session_id = %s",
        (sid,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_prune_rounds_before_cutoff_adjusts_only_the_touched_sessions(
    conn: psycopg.Connection, db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    events: list[Event] = [
        SessionStarted(event_id="s1", occurred_at=OLD, session_id="mixed", model="m"),
        SessionStarted(event_id="s2", occurred_at=OLD, session_id="all-old", model="m"),
        SessionStarted(event_id="s3", occurred_at=NEW, session_id="all-new", model="m"),
        # Quiet for the whole retention, but its producer's heartbeat is live: kept.
        SessionStarted(event_id="s4", occurred_at=OLD, session_id="alive", model="m"),
        *_round("mixed-old", "mixed", OLD, 10, tools=2),
        *_round("mixed-new", "mixed", NEW, 100),
        *_round("old-1", "all-old", OLD, 20),
        *_round("old-2", "all-old", OLD + timedelta(days=1), 30),
        *_round("new-1", "all-new", NEW, 40),
        # Stubs whose start never came: a stale one (gone) and a recent one (kept).
        RoundCompressed(
            event_id="st1", occurred_at=OLD, round_id="stub-old", session_id="ghost", tokens_saved=5
        ),
        SessionMessageCount(event_id="st2", occurred_at=OLD, session_id="ghost-2", message_count=3),
        RoundCompressed(
            event_id="st3", occurred_at=NEW, round_id="stub-new", session_id="ghost-3", tokens_saved=5
        ),
        ForwardStarted(
            event_id="f1", occurred_at=OLD, forward_id="f-old", endpoint="/e", model="m", is_stream=False
        ),
        ForwardCompleted(event_id="f2", occurred_at=OLD, forward_id="f-old", status="success"),
        ForwardStarted(
            event_id="f3", occurred_at=NEW, forward_id="f-new", endpoint="/e", model="m", is_stream=False
        ),
        ForwardCompleted(event_id="f4", occurred_at=OLD, forward_id="f-stub", status="error"),
        SyncMismatch(event_id="m1", occurred_at=OLD, reason="message_count"),
        SyncMismatch(event_id="m2", occurred_at=NEW, reason="message_count"),
    ]
    apply_events(conn, events)
    # Counter bookkeeping: the OLD ones were applied long ago.
    conn.execute("UPDATE applied_counter_events SET applied_at = %s WHERE event_id <> 'm2'", (OLD,))
    conn.execute(
        "INSERT INTO maintenance_runs (job, started_at, finished_at, details) VALUES "
        "('reconcile', %s, %s, '{}')",
        (OLD, OLD),
    )
    settings = prune_settings(db_url, redis_url, key_prefix)
    redis_client.xadd(
        settings.keys.dead_letters,
        {"reason": "old"},
        id=f"{int((NOW - timedelta(days=31)).timestamp() * 1000)}-0",
    )
    redis_client.xadd(settings.keys.dead_letters, {"reason": "new"}, id=f"{int(NEW.timestamp() * 1000)}-0")
    redis_client.zadd(
        settings.keys.active_sessions, {"gone": NOW.timestamp() - 5, "alive": NOW.timestamp() + 60}
    )
    redis_client.zadd(
        settings.keys.awaiting_sessions, {"ancient": OLD.timestamp(), "recent": NEW.timestamp()}
    )
    untouched = _session_row(conn, "all-new")

    details = run_prune(settings, now=NOW)

    rounds = {r for (r,) in conn.execute("SELECT round_id FROM round_metrics").fetchall()}
    tools = {t for (t,) in conn.execute("SELECT tool_call_id FROM tool_call_metrics").fetchall()}
    assert rounds == {"mixed-new", "new-1", "stub-new"}
    assert tools == {"mixed-new-t0", "new-1-t0"}
    # The touched sessions cover what remains. Unlike the seed, a session quiet for the whole
    # retention goes too (all-old), unless its heartbeat is live (alive).
    assert _session_row(conn, "mixed")[:6] == (1, 200, 1, 1, 7, 1)
    assert _session_row(conn, "all-new") == untouched  # same row version: not even rewritten
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)
    sessions = {s for (s,) in conn.execute("SELECT session_id FROM session_metrics").fetchall()}
    assert sessions == {"mixed", "alive", "all-new", "ghost-3"}  # stale stubs gone
    assert {f for (f,) in conn.execute("SELECT forward_id FROM forward_request_metrics").fetchall()} == {
        "f-new"
    }
    assert conn.execute("SELECT count(*) FROM execute_sync_mismatch_metrics").fetchone() == (1,)
    assert conn.execute("SELECT array_agg(event_id) FROM applied_counter_events").fetchone() == (["m2"],)
    assert [f[b"reason"] for _, f in redis_client.xrange(settings.keys.dead_letters)] == [b"new"]
    assert redis_client.zrange(settings.keys.active_sessions, 0, -1) == [b"alive"]
    assert redis_client.zrange(settings.keys.awaiting_sessions, 0, -1) == [b"recent"]
    assert {
        k: details[k]
        for k in (
            "rounds",
            "tool_calls",
            "session_updates",
            "forwards",
            "sessions",
            "stub_sessions",
            "sync_mismatches",
            "dead_letters",
            "maintenance_runs",
        )
    } == {
        "rounds": 4,
        "tool_calls": 4,
        "session_updates": 3,
        "forwards": 2,
        "sessions": 1,
        "stub_sessions": 2,
        "sync_mismatches": 1,
        "dead_letters": 1,
        "maintenance_runs": 1,
    }
    (recorded,) = runs(conn, "prune")
    assert recorded["rounds"] == 4 and "seconds" in recorded


def _spread_history(rng: random.Random, groups: int) -> list[Event]:
    """Coherent histories, group i shifted i days into the past."""
    history: list[Event] = []
    for i in range(groups):
        shift = timedelta(days=i)
        for ev in coherent_history(rng, sessions=2, forwards=1, mismatches=1, prefix=f"g{i}-"):
            history.append(ev.model_copy(update={"occurred_at": ev.occurred_at - shift}))
    return history


def _reference_after_prune(history: list[Event], cutoff: datetime) -> dict[str, list[dict[str, Any]]]:
    """The seed's prune_rounds_before applied to the seed's state, plus the other retentions, and
    sessions quiet since before the cutoff deleted with their children (not the seed's)."""
    ref = SeedReference.of(history)
    doomed = {rid for rid, r in ref.rounds.items() if r["started_at"] < cutoff}
    ref.rounds = {rid: r for rid, r in ref.rounds.items() if rid not in doomed}
    ref.tools = {tid: t for tid, t in ref.tools.items() if t["round_id"] not in doomed}  # ON DELETE CASCADE
    ref.forwards = {fid: f for fid, f in ref.forwards.items() if f["started_at"] >= cutoff}
    ref.mismatches = {k: m for k, m in ref.mismatches.items() if m["mismatch_date"] >= cutoff.date()}
    ref.finish()  # refresh_session_aggregates, every session
    quiet = {sid for sid, s in ref.sessions.items() if s["updated_at"] < cutoff}
    ref.sessions = {sid: s for sid, s in ref.sessions.items() if sid not in quiet}
    ref.rounds = {rid: r for rid, r in ref.rounds.items() if r["session_id"] not in quiet}
    ref.tools = {tid: t for tid, t in ref.tools.items() if t["session_id"] not in quiet}
    return ref.tables()


def test_chunked_prune_equals_the_seeds_prune(conn: psycopg.Connection) -> None:
    rng = random.Random(23)
    history = _spread_history(rng, 12)
    apply_events(conn, history)
    cutoff = datetime(2026, 2, 5, 12, tzinfo=UTC)  # halfway through the twelve days

    counts = prune(conn, cutoff=cutoff, dedupe_before=cutoff, chunk_size=3)

    assert counts["rounds"] > 3 and counts["forwards"] > 3 and counts["sessions"] > 3  # several chunks each
    assert database_tables(conn) == _reference_after_prune(history, cutoff)
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)
    assert prune(conn, cutoff=cutoff, dedupe_before=cutoff, chunk_size=3)["rounds"] == 0


def test_prune_next_to_appliers_keeps_aggregates_equal_to_children(
    db_url: str, conn: psycopg.Connection
) -> None:
    rng = random.Random(29)
    history = _spread_history(rng, 20)
    apply_events(conn, history[: len(history) // 2])
    cutoff = datetime(2026, 2, 1, 12, tzinfo=UTC)
    errors: list[BaseException] = []
    appliers = []
    for _ in range(2):
        # Every event again, shuffled and duplicated: pruned rounds come back, counted again once.
        delivered = deliveries(rng, history, max_copies=2)
        batches = [delivered[j : j + 30] for j in range(0, len(delivered), 30)]
        appliers.append(threading.Thread(target=apply_retrying, args=(db_url, batches, errors)))
    stop = threading.Event()
    pruned: list[int] = []

    def prune_loop() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                while not stop.is_set():
                    pruned.append(prune(c, cutoff=cutoff, dedupe_before=cutoff, chunk_size=5)["rounds"])
        except Exception as exc:
            errors.append(exc)

    pruner = threading.Thread(target=prune_loop)
    pruner.start()
    for t in appliers:
        t.start()
    for t in appliers:
        t.join(timeout=60)
    stop.set()
    pruner.join(timeout=30)
    assert not errors
    assert sum(pruned) > 0
    # Late events may bring pruned rounds back (as the seed would re-insert them), but every
    # session's aggregates still equal the sum over its children.
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)


def test_redelivered_compression_of_a_pruned_round(conn: psycopg.Connection) -> None:
    at = OLD
    events = _round("r", "s", at, 10, tools=0)
    apply_events(conn, [SessionStarted(event_id="s", occurred_at=at, session_id="s", model="m"), *events])
    prune(conn, cutoff=NOW - timedelta(days=90), dedupe_before=at - timedelta(days=1))
    assert conn.execute("SELECT count(*) FROM round_metrics").fetchone() == (0,)
    # A very late redelivery: the compression (already counted) and the completion of the pruned round.
    apply_events(conn, [ev for ev in events if ev.type in ("round.compressed", "round.completed")])
    assert conn.execute("SELECT count(*) FROM round_metrics").fetchone() == (1,)
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)


def test_tool_calls_whose_round_never_arrived_are_shown_then_pruned(conn: psycopg.Connection) -> None:
    """Found in review: such a tool call outlived every retention, kept its session's count up
    and was left out of the session detail."""
    from worker.read import queries

    old = NOW - timedelta(days=200)
    apply_events(
        conn,
        [
            SessionStarted(event_id="s", occurred_at=old, session_id="s", model="m"),
            ToolStarted(
                event_id="t",
                occurred_at=old,
                tool_call_id="t",
                round_id="lost",
                session_id="s",
                tool_name="grep",
            ),
            ToolCompleted(
                event_id="tc",
                occurred_at=old,
                tool_call_id="t",
                round_id="lost",
                session_id="s",
                success=True,
            ),
            # The session itself is still in use (a session quiet for the retention would go).
            SessionMessageCount(event_id="m", occurred_at=NEW, session_id="s", message_count=1),
        ],
    )
    detail = queries.session_detail(conn, "s")
    assert detail is not None and detail.rounds == []
    assert [(c.tool_call_id, c.round_id) for c in detail.tool_calls_without_round] == [("t", "lost")]
    assert detail.session.tool_call_count == 1
    counts = prune(conn, cutoff=NOW - timedelta(days=90), dedupe_before=NOW - timedelta(days=14))
    assert counts["tool_calls"] == 1 and counts["session_updates"] == 1
    assert conn.execute("SELECT count(*) FROM tool_call_metrics").fetchone() == (0,)
    assert conn.execute("SELECT tool_call_count FROM session_metrics").fetchone() == (0,)
    assert aggregate_drift(conn) == []
    assert_rollups_match(conn)
