"""The seed's query tests (storage.rs, bottom), ported: same calls, same expectations."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from tests.read.conftest import fill
from tests.read.events import Events, usage, utc
from worker.read import queries


def test_storage_records_session_and_round_data_for_summary_queries(conn: psycopg.Connection[Any]) -> None:
    at = utc(2026, 2, 10, 10)
    ev = Events()
    ev.session_started("session-a", "gpt-4", at)
    ev.message_count("session-a", 7, at)
    ev.round_started("round-a", "session-a", "gpt-4", at)
    ev.tool_started("tool-1", "round-a", "session-a", "read_file", at)
    ev.tool_completed("tool-1", "round-a", "session-a", at, success=True)
    ev.round_completed("round-a", "session-a", at, usage(10, 15), cached=3)
    ev.session_completed("session-a", "completed", at)
    fill(conn, ev.events)

    summary = queries.summary(conn)
    assert summary.total_sessions == 1
    assert summary.total_tokens.total_tokens == 25
    assert summary.total_tool_calls == 1
    assert summary.prompt_cached_tool_outputs == 3

    detail = queries.session_detail(conn, "session-a")
    assert detail is not None
    assert detail.session.prompt_cached_tool_outputs == 3
    assert detail.session.message_count == 7
    assert len(detail.rounds) == 1
    assert detail.rounds[0].prompt_cached_tool_outputs == 3
    assert [t.tool_call_id for t in detail.rounds[0].tool_calls] == ["tool-1"]


def test_storage_filters_sessions_and_returns_tool_breakdown(conn: psycopg.Connection[Any]) -> None:
    day_a, day_b = utc(2026, 2, 1, 9), utc(2026, 2, 5, 9)
    ev = Events()
    ev.session_started("s1", "gpt-4", day_a)
    ev.round_started("r1", "s1", "gpt-4", day_a)
    ev.tool_started("t1", "r1", "s1", "read_file", day_a)
    ev.tool_completed("t1", "r1", "s1", day_a, success=True)
    ev.round_completed("r1", "s1", day_a, usage(1, 1))
    ev.session_started("s2", "claude-3", day_b)
    fill(conn, ev.events)

    sessions = queries.sessions(
        conn, start_date=date(2026, 2, 1), end_date=date(2026, 2, 3), model="gpt-4", limit=100
    )
    assert len(sessions) == 1
    assert sessions[0].session_id == "s1"
    assert sessions[0].tool_breakdown.get("read_file") == 1


def test_storage_produces_daily_rollups_with_model_and_tool_breakdowns(conn: psycopg.Connection[Any]) -> None:
    now = utc(2026, 2, 10, 12)
    ev = Events()
    ev.session_started("daily-1", "gpt-4", now)
    ev.round_started("daily-r1", "daily-1", "gpt-4", now)
    ev.tool_started("daily-t1", "daily-r1", "daily-1", "write_file", now)
    ev.tool_completed("daily-t1", "daily-r1", "daily-1", now, success=True)
    ev.round_completed("daily-r1", "daily-1", now, usage(3, 7))
    fill(conn, ev.events)

    daily = queries.daily_metrics(conn, days=7, end_date=date(2026, 2, 10))
    assert len(daily) == 1
    row = daily[0]
    assert row.total_sessions == 1
    assert row.total_rounds == 1
    assert row.total_tool_calls == 1
    assert row.model_breakdown["gpt-4"].total_tokens == 10
    assert row.tool_breakdown == {"write_file": 1}


# What the seed's reconcile_stale_executions(&[], &["stale-await"]) does, as plain SQL.
# TODO(issue 5): replace with the reconcile job once it exists.
_EMULATED_RECONCILE = [
    """UPDATE session_metrics SET status = CASE WHEN session_id = 'stale-await' THEN 'awaiting_response'
                                             ELSE 'completed' END,
                                completed_at = COALESCE(completed_at, now()), updated_at = now()
       WHERE status = 'running'""",
    """UPDATE round_metrics SET status = 'error', completed_at = COALESCE(completed_at, now()),
                              error = COALESCE(error, 'reconciled_stale_round')
       WHERE status = 'running'""",
    """UPDATE forward_request_metrics SET status = 'error', completed_at = COALESCE(completed_at, now()),
                                        error = COALESCE(error, 'reconciled_stale_forward'),
                                        updated_at = now()
       WHERE status = 'pending' AND completed_at IS NULL""",
]


def test_storage_reconciles_stale_running_sessions_rounds_and_forwards(conn: psycopg.Connection[Any]) -> None:
    now = utc(2026, 2, 12, 9)
    ev = Events()
    ev.session_started("stale-await", "gpt-4", now)
    ev.round_started("round-await", "stale-await", "gpt-4", now)
    ev.session_started("stale-complete", "gpt-4", now)
    ev.round_started("round-complete", "stale-complete", "gpt-4", now)
    ev.forward_started("forward-pending", "/v1/chat/completions", "gpt-4", now, stream=False)
    fill(conn, ev.events)
    for statement in _EMULATED_RECONCILE:
        conn.execute(statement)

    sessions = {s.session_id: s for s in queries.sessions(conn)}
    assert sessions["stale-await"].status == "awaiting_response"
    assert sessions["stale-complete"].status == "completed"
    assert sessions["stale-await"].completed_at is not None
    assert sessions["stale-complete"].completed_at is not None

    for session_id in ("stale-await", "stale-complete"):
        detail = queries.session_detail(conn, session_id)
        assert detail is not None
        assert detail.rounds[0].status == "error"
        assert detail.rounds[0].error == "reconciled_stale_round"

    forward_requests = queries.forward_requests(conn)
    assert len(forward_requests) == 1
    assert forward_requests[0].status == "error"
    assert forward_requests[0].error == "reconciled_stale_forward"

    forward_summary = queries.forward_summary(conn)
    assert forward_summary.total_requests == 1
    assert forward_summary.successful_requests == 0
    assert forward_summary.failed_requests == 1

    summary = queries.summary(conn)
    assert summary.total_sessions == 2
    assert summary.active_sessions == 0
    assert summary.awaiting_response_sessions == 1
    assert summary.completed_sessions == 1
    assert summary.error_sessions == 0
    assert summary.cancelled_sessions == 0


def test_storage_summarizes_execute_sync_mismatches_by_reason(conn: psycopg.Connection[Any]) -> None:
    day_a, day_b = utc(2026, 2, 10, 10), utc(2026, 2, 11, 10)
    ev = Events()
    ev.sync_mismatch("message_count", day_a)
    ev.sync_mismatch("message_count", day_a)
    ev.sync_mismatch("pending_question", day_a)
    ev.sync_mismatch("last_message_id", day_b)
    fill(conn, ev.events)

    day_a_summary = queries.summary(conn, start_date=date(2026, 2, 10), end_date=date(2026, 2, 10))
    assert day_a_summary.total_sync_mismatches == 3
    assert day_a_summary.sync_mismatch_breakdown == {"message_count": 2, "pending_question": 1}

    full_summary = queries.summary(conn)
    assert full_summary.total_sync_mismatches == 4
    assert full_summary.sync_mismatch_breakdown.get("last_message_id") == 1
