"""The write side of the seed's tests (storage.rs), ported: events through the apply engine,
assertions on the tables. Plus one test per convergence rule that the seed's tests leave implicit."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg.rows import dict_row

from contract.events import (
    ForwardCompleted,
    ForwardStarted,
    RoundCompleted,
    RoundCompressed,
    RoundStarted,
    SessionCompleted,
    SessionMessageCount,
    SessionStarted,
    SyncMismatch,
    TokenUsage,
    ToolCompleted,
    ToolStarted,
)
from worker.engine.apply import apply_events

_ids = itertools.count()


def ev(cls: Any, at: datetime, **fields: Any) -> Any:
    return cls(event_id=f"ev-{next(_ids)}", occurred_at=at, **fields)


def row(conn: psycopg.Connection, table: str, where: str, *args: object) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT * FROM {table} WHERE {where}", args)
        found = cur.fetchone()
    assert found is not None, f"no {table} row where {where} {args}"
    return found


def usage(p: int, c: int) -> TokenUsage:
    return TokenUsage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


T = datetime(2026, 2, 10, 10, 0, 0, tzinfo=UTC)


def test_records_session_and_round_data(conn: psycopg.Connection) -> None:
    # storage_records_session_and_round_data_for_summary_queries
    apply_events(
        conn,
        [
            ev(SessionStarted, T, session_id="session-a", model="gpt-4"),
            ev(SessionMessageCount, T, session_id="session-a", message_count=7),
            ev(RoundStarted, T, round_id="round-a", session_id="session-a", model="gpt-4"),
            ev(
                ToolStarted,
                T,
                tool_call_id="tool-1",
                round_id="round-a",
                session_id="session-a",
                tool_name="read_file",
            ),
            ev(
                ToolCompleted,
                T,
                tool_call_id="tool-1",
                round_id="round-a",
                session_id="session-a",
                success=True,
            ),
            ev(
                RoundCompleted,
                T,
                round_id="round-a",
                session_id="session-a",
                status="success",
                usage=usage(10, 15),
                prompt_cached_tool_outputs=3,
            ),
            ev(SessionCompleted, T, session_id="session-a", status="completed"),
        ],
    )
    s = row(conn, "session_metrics", "session_id = %s", "session-a")
    assert (s["total_rounds"], s["total_tokens"], s["tool_call_count"], s["prompt_cached_tool_outputs"]) == (
        1,
        25,
        1,
        3,
    )
    assert (s["status"], s["completed_at"], s["message_count"]) == ("completed", T, 7)
    r = row(conn, "round_metrics", "round_id = %s", "round-a")
    assert (r["status"], r["prompt_cached_tool_outputs"], r["total_tokens"]) == ("success", 3, 25)
    t = row(conn, "tool_call_metrics", "tool_call_id = %s", "tool-1")
    assert (t["success"], t["completed_at"], t["tool_name"]) == (True, T, "read_file")


def test_sessions_with_tools_and_without(conn: psycopg.Connection) -> None:
    # storage_filters_sessions_and_returns_tool_breakdown (write side)
    day_a, day_b = datetime(2026, 2, 1, 9, tzinfo=UTC), datetime(2026, 2, 5, 9, tzinfo=UTC)
    apply_events(
        conn,
        [
            ev(SessionStarted, day_a, session_id="s1", model="gpt-4"),
            ev(RoundStarted, day_a, round_id="r1", session_id="s1", model="gpt-4"),
            ev(ToolStarted, day_a, tool_call_id="t1", round_id="r1", session_id="s1", tool_name="read_file"),
            ev(ToolCompleted, day_a, tool_call_id="t1", round_id="r1", session_id="s1", success=True),
            ev(RoundCompleted, day_a, round_id="r1", session_id="s1", status="success", usage=usage(1, 1)),
            ev(SessionStarted, day_b, session_id="s2", model="claude-3"),
        ],
    )
    s1 = row(conn, "session_metrics", "session_id = %s", "s1")
    s2 = row(conn, "session_metrics", "session_id = %s", "s2")
    assert (s1["status"], s1["tool_call_count"], s1["total_tokens"]) == ("running", 1, 2)
    assert (s2["model"], s2["started_at"], s2["total_rounds"]) == ("claude-3", day_b, 0)


def test_daily_rollup_inputs(conn: psycopg.Connection) -> None:
    # storage_produces_daily_rollups_with_model_and_tool_breakdowns (write side)
    now = datetime(2026, 2, 10, 12, tzinfo=UTC)
    apply_events(
        conn,
        [
            ev(SessionStarted, now, session_id="daily-1", model="gpt-4"),
            ev(RoundStarted, now, round_id="daily-r1", session_id="daily-1", model="gpt-4"),
            ev(
                ToolStarted,
                now,
                tool_call_id="daily-t1",
                round_id="daily-r1",
                session_id="daily-1",
                tool_name="write_file",
            ),
            ev(
                ToolCompleted,
                now,
                tool_call_id="daily-t1",
                round_id="daily-r1",
                session_id="daily-1",
                success=True,
            ),
            ev(
                RoundCompleted,
                now,
                round_id="daily-r1",
                session_id="daily-1",
                status="success",
                usage=usage(3, 7),
            ),
        ],
    )
    s = row(conn, "session_metrics", "session_id = %s", "daily-1")
    assert (s["total_rounds"], s["tool_call_count"], s["total_tokens"]) == (1, 1, 10)


def test_sync_mismatches_count_per_reason_and_utc_date(conn: psycopg.Connection) -> None:
    # storage_summarizes_execute_sync_mismatches_by_reason (write side)
    day_a, day_b = datetime(2026, 2, 10, 10, tzinfo=UTC), datetime(2026, 2, 11, 10, tzinfo=UTC)
    late_evening_west = datetime(2026, 2, 10, 20, tzinfo=timezone(timedelta(hours=-8)))  # 2026-02-11 UTC
    events = [
        ev(SyncMismatch, day_a, reason="message_count"),
        ev(SyncMismatch, day_a, reason="message_count"),
        ev(SyncMismatch, day_a, reason="pending_question"),
        ev(SyncMismatch, day_b, reason="last_message_id"),
        ev(SyncMismatch, late_evening_west, reason="last_message_id"),
    ]
    apply_events(conn, events)
    apply_events(conn, events[:2])  # redelivered: counted once
    counts = {
        (r, str(d)): c
        for r, d, c in conn.execute("SELECT reason, mismatch_date, count FROM execute_sync_mismatch_metrics")
    }
    assert counts == {
        ("message_count", "2026-02-10"): 2,
        ("pending_question", "2026-02-10"): 1,
        ("last_message_id", "2026-02-11"): 2,
    }


def test_children_before_their_start_are_kept_and_merged(conn: psycopg.Connection) -> None:
    apply_events(
        conn,
        [
            ev(
                RoundCompleted,
                T + timedelta(seconds=5),
                round_id="r",
                session_id="s",
                status="success",
                usage=usage(4, 6),
            )
        ],
    )
    apply_events(
        conn, [ev(RoundCompressed, T + timedelta(seconds=3), round_id="r", session_id="s", tokens_saved=50)]
    )
    apply_events(
        conn,
        [
            ev(
                ToolCompleted,
                T + timedelta(seconds=2),
                tool_call_id="t",
                round_id="r",
                session_id="s",
                success=False,
                error="denied",
            )
        ],
    )
    apply_events(conn, [ev(SessionMessageCount, T + timedelta(seconds=4), session_id="s", message_count=3)])
    stub = row(conn, "session_metrics", "session_id = %s", "s")
    assert stub["started_at"] is None and stub["total_tokens"] == 10  # a stub until its start arrives
    apply_events(
        conn,
        [
            ev(
                ToolStarted,
                T + timedelta(seconds=1),
                tool_call_id="t",
                round_id="r",
                session_id="s",
                tool_name="shell",
            ),
            ev(RoundStarted, T, round_id="r", session_id="s", model="m"),
            ev(SessionStarted, T, session_id="s", model="m"),
        ],
    )
    s = row(conn, "session_metrics", "session_id = %s", "s")
    assert (s["started_at"], s["model"], s["status"], s["message_count"]) == (T, "m", "running", 3)
    assert (
        s["total_rounds"],
        s["total_tokens"],
        s["total_compression_events"],
        s["total_tokens_saved"],
        s["tool_call_count"],
    ) == (1, 10, 1, 50, 1)
    r = row(conn, "round_metrics", "round_id = %s", "r")
    assert (r["status"], r["model"], r["started_at"], r["compression_count"]) == ("success", "m", T, 1)
    t = row(conn, "tool_call_metrics", "tool_call_id = %s", "t")
    assert (t["tool_name"], t["success"], t["error"]) == ("shell", False, "denied")


def test_session_restart_keeps_earliest_start_latest_model_and_reopens_only_if_later(
    conn: psycopg.Connection,
) -> None:
    apply_events(
        conn,
        [
            ev(SessionCompleted, T + timedelta(seconds=10), session_id="s", status="error"),
            ev(SessionStarted, T + timedelta(seconds=5), session_id="s", model="late-but-before-completion"),
            ev(SessionStarted, T, session_id="s", model="first"),
        ],
    )
    s = row(conn, "session_metrics", "session_id = %s", "s")
    assert (s["started_at"], s["model"], s["status"]) == (T, "late-but-before-completion", "error")
    apply_events(conn, [ev(SessionStarted, T + timedelta(seconds=20), session_id="s", model="reopened")])
    s = row(conn, "session_metrics", "session_id = %s", "s")
    assert (s["started_at"], s["model"], s["status"], s["completed_at"]) == (T, "reopened", "running", None)


def test_equal_occurred_at_start_before_completion_then_event_id(conn: psycopg.Connection) -> None:
    # A start and a completion in the same microsecond: the completion wins whatever the arrival order.
    apply_events(conn, [ev(SessionCompleted, T, session_id="s", status="cancelled")])
    apply_events(conn, [ev(SessionStarted, T, session_id="s", model="m")])
    assert row(conn, "session_metrics", "session_id = %s", "s")["status"] == "cancelled"
    # Two completions in the same microsecond: the greater event_id wins, in any order.
    a = RoundCompleted(
        event_id="a", occurred_at=T, round_id="r", session_id="s", status="error", usage=usage(1, 0)
    )
    b = RoundCompleted(
        event_id="b", occurred_at=T, round_id="r", session_id="s", status="success", usage=usage(2, 0)
    )
    apply_events(conn, [b])
    apply_events(conn, [a])
    assert row(conn, "round_metrics", "round_id = %s", "r")["status"] == "success"


def test_round_keeps_first_start_tool_and_forward_take_latest(conn: psycopg.Connection) -> None:
    later = T + timedelta(seconds=1)
    apply_events(
        conn,
        [
            ev(RoundStarted, later, round_id="r", session_id="s", model="second"),
            ev(ToolStarted, later, tool_call_id="t", round_id="r", session_id="s", tool_name="second"),
            ev(ForwardStarted, later, forward_id="f", endpoint="/b", model="second", is_stream=True),
        ],
    )
    apply_events(
        conn,
        [
            ev(RoundStarted, T, round_id="r", session_id="s", model="first"),
            ev(ToolStarted, T, tool_call_id="t", round_id="r", session_id="s", tool_name="first"),
            ev(ForwardStarted, T, forward_id="f", endpoint="/a", model="first", is_stream=False),
        ],
    )
    assert row(conn, "round_metrics", "round_id = %s", "r")["model"] == "first"
    assert row(conn, "tool_call_metrics", "tool_call_id = %s", "t")["tool_name"] == "second"
    f = row(conn, "forward_request_metrics", "forward_id = %s", "f")
    assert (f["endpoint"], f["is_stream"], f["started_at"]) == ("/b", True, later)


def test_later_forward_start_resets_its_completion(conn: psycopg.Connection) -> None:
    done = ev(
        ForwardCompleted,
        T + timedelta(seconds=2),
        forward_id="f",
        status="success",
        status_code=200,
        usage=usage(5, 5),
    )
    apply_events(conn, [done])  # before any start: kept
    apply_events(conn, [ev(ForwardStarted, T, forward_id="f", endpoint="/a", model="m", is_stream=False)])
    f = row(conn, "forward_request_metrics", "forward_id = %s", "f")
    assert (f["status"], f["status_code"], f["total_tokens"]) == ("success", 200, 10)
    apply_events(
        conn,
        [
            ev(
                ForwardStarted,
                T + timedelta(seconds=3),
                forward_id="f",
                endpoint="/a",
                model="m",
                is_stream=False,
            )
        ],
    )
    f = row(conn, "forward_request_metrics", "forward_id = %s", "f")
    assert (f["status"], f["completed_at"], f["status_code"], f["total_tokens"]) == (
        "pending",
        None,
        None,
        None,
    )
    apply_events(conn, [done])  # the old completion, redelivered, stays superseded
    assert row(conn, "forward_request_metrics", "forward_id = %s", "f")["status"] == "pending"
