"""The seed's design ported literally to PostgreSQL: the baseline every figure is compared with.

Per event: a new connection, the seed's statement(s) for that write, a full recompute of the
session's aggregates after each write that the seed refreshes on, then close.
"""

from __future__ import annotations

from typing import Any

import psycopg

from contract.events import Event

REFRESH = """
UPDATE session_metrics SET
    total_rounds = COALESCE((SELECT COUNT(*) FROM round_metrics WHERE session_id = %(s)s), 0),
    prompt_tokens = COALESCE((SELECT SUM(prompt_tokens) FROM round_metrics WHERE session_id = %(s)s), 0),
    completion_tokens = COALESCE((SELECT SUM(completion_tokens) FROM round_metrics
                                  WHERE session_id = %(s)s), 0),
    total_tokens = COALESCE((SELECT SUM(total_tokens) FROM round_metrics WHERE session_id = %(s)s), 0),
    prompt_cached_tool_outputs = COALESCE((SELECT SUM(prompt_cached_tool_outputs) FROM round_metrics
                                           WHERE session_id = %(s)s), 0),
    total_compression_events = COALESCE((SELECT SUM(compression_count) FROM round_metrics
                                         WHERE session_id = %(s)s), 0),
    total_tokens_saved = COALESCE((SELECT SUM(tokens_saved) FROM round_metrics WHERE session_id = %(s)s), 0),
    tool_call_count = COALESCE((SELECT COUNT(*) FROM tool_call_metrics WHERE session_id = %(s)s), 0),
    updated_at = %(t)s
WHERE session_id = %(s)s
"""


def apply_naively(url: str, ev: Any) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        t, kind = ev.occurred_at, ev.type
        if kind == "session.started":
            c.execute(
                """INSERT INTO session_metrics (session_id, model, started_at, status, updated_at)
                         VALUES (%s, %s, %s, 'running', %s) ON CONFLICT (session_id) DO UPDATE SET
                         model = excluded.model,
                         started_at = LEAST(session_metrics.started_at, excluded.started_at),
                         completed_at = NULL, status = 'running', updated_at = excluded.updated_at""",
                (ev.session_id, ev.model, t, t),
            )
        elif kind == "session.message_count":
            c.execute(
                "UPDATE session_metrics SET message_count = %s, updated_at = %s WHERE session_id = %s",
                (ev.message_count, t, ev.session_id),
            )
        elif kind == "session.completed":
            c.execute(REFRESH, {"s": ev.session_id, "t": t})
            c.execute(
                "UPDATE session_metrics SET status = %s, completed_at = %s, updated_at = %s "
                "WHERE session_id = %s",
                (ev.status, t, t, ev.session_id),
            )
        elif kind == "round.started":
            c.execute(
                """INSERT INTO round_metrics (round_id, session_id, model, started_at, status)
                         VALUES (%s, %s, %s, %s, 'running') ON CONFLICT (round_id) DO NOTHING""",
                (ev.round_id, ev.session_id, ev.model, t),
            )
            c.execute(REFRESH, {"s": ev.session_id, "t": t})
        elif kind == "round.completed":
            (sid,) = c.execute(
                "SELECT session_id FROM round_metrics WHERE round_id = %s", (ev.round_id,)
            ).fetchone()
            u = ev.usage
            c.execute(
                """UPDATE round_metrics SET completed_at = %s, status = %s, prompt_tokens = %s,
                         completion_tokens = %s, total_tokens = %s, prompt_cached_tool_outputs = %s,
                         error = %s
                         WHERE round_id = %s""",
                (
                    t,
                    ev.status,
                    u.prompt_tokens,
                    u.completion_tokens,
                    u.total_tokens,
                    ev.prompt_cached_tool_outputs,
                    ev.error,
                    ev.round_id,
                ),
            )
            c.execute(REFRESH, {"s": sid, "t": t})
        elif kind == "round.compressed":
            (sid,) = c.execute(
                "SELECT session_id FROM round_metrics WHERE round_id = %s", (ev.round_id,)
            ).fetchone()
            c.execute(
                "UPDATE round_metrics SET compression_count = compression_count + 1, "
                "tokens_saved = tokens_saved + %s WHERE round_id = %s",
                (ev.tokens_saved, ev.round_id),
            )
            c.execute(REFRESH, {"s": sid, "t": t})
        elif kind == "tool.started":
            c.execute(
                """INSERT INTO tool_call_metrics (tool_call_id, round_id, session_id, tool_name, started_at)
                         VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tool_call_id) DO UPDATE SET
                         round_id = excluded.round_id, session_id = excluded.session_id,
                         tool_name = excluded.tool_name, started_at = excluded.started_at""",
                (ev.tool_call_id, ev.round_id, ev.session_id, ev.tool_name, t),
            )
        elif kind == "tool.completed":
            (sid,) = c.execute(
                "SELECT session_id FROM tool_call_metrics WHERE tool_call_id = %s", (ev.tool_call_id,)
            ).fetchone()
            c.execute(
                "UPDATE tool_call_metrics SET completed_at = %s, success = %s, error = %s "
                "WHERE tool_call_id = %s",
                (t, ev.success, ev.error, ev.tool_call_id),
            )
            c.execute(REFRESH, {"s": sid, "t": t})
        elif kind == "forward.started":
            c.execute(
                """INSERT INTO forward_request_metrics (forward_id, endpoint, model, is_stream, started_at,
                         status, updated_at) VALUES (%s, %s, %s, %s, %s, 'pending', %s)
                         ON CONFLICT (forward_id) DO UPDATE SET endpoint = excluded.endpoint,
                         model = excluded.model, is_stream = excluded.is_stream,
                         started_at = excluded.started_at, completed_at = NULL, status_code = NULL,
                         status = 'pending', prompt_tokens = NULL, completion_tokens = NULL,
                         total_tokens = NULL, error = NULL, updated_at = excluded.updated_at""",
                (ev.forward_id, ev.endpoint, ev.model, ev.is_stream, t, t),
            )
        elif kind == "forward.completed":
            u = ev.usage
            c.execute(
                """UPDATE forward_request_metrics SET completed_at = %s, status_code = %s, status = %s,
                         prompt_tokens = %s, completion_tokens = %s, total_tokens = %s, error = %s,
                         updated_at = %s
                         WHERE forward_id = %s""",
                (
                    t,
                    ev.status_code,
                    ev.status,
                    u and u.prompt_tokens,
                    u and u.completion_tokens,
                    u and u.total_tokens,
                    ev.error,
                    t,
                    ev.forward_id,
                ),
            )
        elif kind == "sync.mismatch":
            c.execute(
                """INSERT INTO execute_sync_mismatch_metrics (reason, mismatch_date, count, updated_at)
                         VALUES (%s, %s, 1, %s) ON CONFLICT (reason, mismatch_date) DO UPDATE SET
                         count = execute_sync_mismatch_metrics.count + 1, updated_at = excluded.updated_at""",
                (ev.reason, t.date(), t),
            )


def apply_all_naively(url: str, events: list[Event]) -> None:
    for ev in sorted(events, key=lambda e: e.order_key):
        apply_naively(url, ev)
