"""What each read shows as a table or CSV: its grids, their columns and which go first when the
terminal is narrow (the lowest ``drop`` first; ids and the first column never)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.read.models import (
    CostReport,
    DailyMetrics,
    ForwardDailyMetrics,
    ForwardEndpointMetrics,
    ForwardMetricsSummary,
    ForwardRequestMetrics,
    MetricsSummary,
    ModelMetrics,
    SessionDetail,
    SessionMetrics,
    TokenUsage,
    ToolMetrics,
)
from worker.tables import Column, Grid

_TOKENS = (Column("prompt", "number", 3), Column("completion", "number", 4), Column("total tokens", "number"))


def _tokens(usage: TokenUsage) -> tuple[int, int, int]:
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


def _pairs(title: str, pairs: Sequence[tuple[str, Any]]) -> Grid:
    return Grid(title, (Column("field"), Column("value")), tuple(pairs), pairs=True)


def status(s: SessionMetrics) -> str:
    """The session's status, and ``(reconciled)`` after it when the reconcile job closed it (no
    session.completed came): ``completed (reconciled)``."""
    return f"{s.status} (reconciled)" if s.closed_by_reconcile else s.status


def summary(s: MetricsSummary) -> list[Grid]:
    return [
        _pairs(
            "Summary",
            [
                ("sessions", s.total_sessions),
                ("active (running)", s.active_sessions),
                ("completed", s.completed_sessions),
                ("awaiting response", s.awaiting_response_sessions),
                ("error", s.error_sessions),
                ("cancelled", s.cancelled_sessions),
                ("closed by reconcile", s.reconciled_sessions),
                ("prompt tokens", s.total_tokens.prompt_tokens),
                ("completion tokens", s.total_tokens.completion_tokens),
                ("total tokens", s.total_tokens.total_tokens),
                ("tool calls", s.total_tool_calls),
                ("prompt cached tool outputs", s.prompt_cached_tool_outputs),
                ("compression events", s.total_compression_events),
                ("tokens saved", s.total_tokens_saved),
                ("sync mismatches", s.total_sync_mismatches),
                ("  by reason", s.sync_mismatch_breakdown),
            ],
        )
    ]


def by_model(rows: list[ModelMetrics]) -> list[Grid]:
    columns = (
        Column("model"),
        Column("sessions", "number"),
        Column("reconciled", "number", 1),
        Column("rounds", "number", 5),
        *_TOKENS,
        Column("tool calls", "number", 6),
        Column("cached outputs", "number", 2),
    )
    return [
        Grid(
            "By model",
            columns,
            tuple(
                (
                    m.model,
                    m.sessions,
                    m.reconciled_sessions,
                    m.rounds,
                    *_tokens(m.tokens),
                    m.tool_calls,
                    m.prompt_cached_tool_outputs,
                )
                for m in rows
            ),
        )
    ]


def sessions(rows: list[SessionMetrics]) -> list[Grid]:
    columns = (
        Column("session", "id"),
        Column("model", "text", 5),
        Column("status", "label", 7),
        Column("started", "time", 6),
        Column("duration ms", "number", 8),
        Column("rounds", "number", 4),
        Column("total tokens", "number", 9),
        Column("tool calls", "number", 3),
        Column("messages", "number", 2),
        Column("tools", "text", 1),
    )
    return [
        Grid(
            f"Sessions ({len(rows)})",
            columns,
            tuple(
                (s.session_id, s.model, status(s), s.started_at, s.duration_ms, s.total_rounds,
                 s.total_token_usage.total_tokens, s.tool_call_count, s.message_count, s.tool_breakdown)
                for s in rows
            ),
        )
    ]  # fmt: skip


def session_detail(d: SessionDetail) -> list[Grid]:
    s = d.session
    session = _pairs(
        f"Session {s.session_id}",
        [
            ("model", s.model),
            ("user", s.user_id),
            ("status", status(s)),
            ("started", s.started_at),
            ("completed", s.completed_at),
            ("closed by reconcile at", s.reconciled_at),
            ("duration ms", s.duration_ms),
            ("rounds", s.total_rounds),
            ("messages", s.message_count),
            ("prompt tokens", s.total_token_usage.prompt_tokens),
            ("completion tokens", s.total_token_usage.completion_tokens),
            ("total tokens", s.total_token_usage.total_tokens),
            ("  cache read tokens", s.cache_read_tokens),
            ("  cache write tokens", s.cache_write_tokens),
            ("  reasoning tokens", s.reasoning_tokens),
            ("tool calls", s.tool_call_count),
            ("  by tool", s.tool_breakdown),
            ("prompt cached tool outputs", s.prompt_cached_tool_outputs),
            ("compression events", s.total_compression_events),
            ("tokens saved", s.total_tokens_saved),
        ],
    )
    rounds = Grid(
        f"Rounds ({len(d.rounds)})",
        (Column("round", "id"), Column("model", "text", 3), Column("provider", "text", 4),
         Column("status", "label", 13), Column("started", "time", 11), Column("duration ms", "number", 15),
         Column("first token ms", "number", 14),
         Column("prompt", "number", 8), Column("completion", "number", 9), Column("total tokens", "number"),
         Column("cache read", "number", 10), Column("cache write", "number", 2),
         Column("reasoning", "number", 7),
         Column("cached", "number", 1), Column("compressions", "number", 5), Column("saved", "number", 6),
         Column("error", "text", 12)),
        tuple(
            (r.round_id, r.model, r.provider, r.status, r.started_at, r.duration_ms, r.time_to_first_token_ms,
             *_tokens(r.token_usage), r.cache_read_tokens, r.cache_write_tokens, r.reasoning_tokens,
             r.prompt_cached_tool_outputs, r.compression_count, r.tokens_saved, r.error)
            for r in d.rounds
        ),
    )  # fmt: skip
    calls = [(r.round_id, t) for r in d.rounds for t in r.tool_calls]
    calls += [(t.round_id, t) for t in d.tool_calls_without_round]
    tools = Grid(
        f"Tool calls ({len(calls)})",
        (Column("round", "id", 1), Column("tool call", "id"), Column("tool", "text"),
         Column("started", "time", 2), Column("duration ms", "number", 3), Column("success", "flag", 6),
         Column("error", "text", 5)),
        tuple(
            (round_id, t.tool_call_id, t.tool_name, t.started_at, t.duration_ms, t.success, t.error)
            for round_id, t in calls
        ),
    )  # fmt: skip
    forwards = Grid(
        f"Forwarded requests ({len(d.forwards)})",
        (Column("forward", "id"), Column("round", "id", 2), Column("endpoint", "text", 6),
         Column("model", "text", 5), Column("provider", "text", 3), Column("status", "label", 10),
         Column("code", "number", 7), Column("started", "time", 4), Column("duration ms", "number", 9),
         Column("first token ms", "number", 8), Column("total tokens", "number"), Column("error", "text", 1)),
        tuple(
            (f.forward_id, f.round_id, f.endpoint, f.model, f.provider, f.status, f.status_code, f.started_at,
             f.duration_ms, f.time_to_first_token_ms,
             None if f.token_usage is None else f.token_usage.total_tokens, f.error)
            for f in d.forwards
        ),
    )  # fmt: skip
    return [session, rounds, tools, forwards]


def daily(rows: list[DailyMetrics]) -> list[Grid]:
    columns = (
        Column("date (UTC)"),
        Column("sessions", "number"),
        Column("reconciled", "number", 1),
        Column("rounds", "number", 5),
        *_TOKENS,
        Column("tool calls", "number", 6),
        Column("cached", "number", 2),
        Column("tokens by model", "text", 1),
        Column("calls by tool", "text", 0),
    )
    return [
        Grid(
            "Daily",
            columns,
            tuple(
                (d.date.isoformat(), d.total_sessions, d.reconciled_sessions, d.total_rounds,
                 *_tokens(d.total_token_usage), d.total_tool_calls, d.prompt_cached_tool_outputs,
                 d.model_breakdown, d.tool_breakdown)
                for d in rows
            ),
        )
    ]  # fmt: skip


def tools(rows: list[ToolMetrics]) -> list[Grid]:
    columns = (
        Column("tool"),
        Column("calls", "number"),
        Column("succeeded", "number", 3),
        Column("failed", "number", 4),
        Column("unfinished", "number", 2),
        Column("failure share", "text", 1),
    )
    return [
        Grid(
            "By tool",
            columns,
            tuple(
                (t.tool_name, t.calls, t.succeeded, t.failed, t.unfinished,
                 "" if t.failure_share is None else f"{t.failure_share:.1%}")
                for t in rows
            ),
        )
    ]  # fmt: skip


def forward_summary(s: ForwardMetricsSummary) -> list[Grid]:
    return [
        _pairs(
            "Forwarded requests",
            [
                ("requests", s.total_requests),
                ("successful", s.successful_requests),
                ("failed (error)", s.failed_requests),
                ("timed out", s.timed_out_requests),
                ("pending", s.pending_requests),
                ("prompt tokens", s.total_tokens.prompt_tokens),
                ("completion tokens", s.total_tokens.completion_tokens),
                ("total tokens", s.total_tokens.total_tokens),
                ("average duration ms", s.avg_duration_ms),
            ],
        )
    ]


def _outcomes(drop: int) -> tuple[Column, ...]:
    return (
        Column("requests", "number"),
        Column("successful", "number", drop + 3),
        Column("failed", "number", drop + 2),
        Column("timed out", "number", drop + 1),
        Column("pending", "number", drop),
    )


def forward_endpoints(rows: list[ForwardEndpointMetrics]) -> list[Grid]:
    return [
        Grid(
            "By endpoint",
            (Column("endpoint"), *_outcomes(4), *_TOKENS, Column("avg duration ms", "number", 8)),
            tuple(
                (e.endpoint, e.requests, e.successful, e.failed, e.timed_out, e.pending, *_tokens(e.tokens),
                 e.avg_duration_ms)
                for e in rows
            ),
        )
    ]  # fmt: skip


def forward_requests(rows: list[ForwardRequestMetrics]) -> list[Grid]:
    columns = (
        Column("forward", "id"),
        Column("endpoint", "text", 6),
        Column("model", "text", 5),
        Column("stream", "flag", 2),
        Column("status", "label", 9),
        Column("code", "number", 7),
        Column("started", "time", 4),
        Column("duration ms", "number", 8),
        Column("total tokens", "number", 3),
        Column("error", "text", 1),
        Column("session", "id", 0),  # the session it was made for (forward.started's session_id)
    )
    return [
        Grid(
            f"Forwarded requests ({len(rows)})",
            columns,
            tuple(
                (f.forward_id, f.endpoint, f.model, f.is_stream, f.status, f.status_code, f.started_at,
                 f.duration_ms, None if f.token_usage is None else f.token_usage.total_tokens, f.error,
                 f.session_id)
                for f in rows
            ),
        )
    ]  # fmt: skip


def forward_daily(rows: list[ForwardDailyMetrics]) -> list[Grid]:
    return [
        Grid(
            "Forwarded requests per day",
            (Column("date (UTC)"), *_outcomes(4), *_TOKENS),
            tuple(
                (d.date.isoformat(), d.requests, d.successful, d.failed, d.timed_out, d.pending,
                 *_tokens(d.tokens))
                for d in rows
            ),
        )
    ]  # fmt: skip


_SPEND = (
    Column("rounds USD", "number"),
    Column("priced rounds", "number", 3),
    Column("unpriced rounds", "number"),
    Column("forwards USD", "number", 2),
    Column("priced forwards", "number", 1),
    Column("unpriced forwards", "number", 2),
)


def _spend(x: Any) -> tuple[Any, ...]:
    return (x.round_usd, x.priced_rounds, x.unpriced_rounds, x.forward_usd, x.priced_forwards,
            x.unpriced_forwards)  # fmt: skip


def cost(c: CostReport) -> list[Grid]:
    """Unpriced rows (no price list knows the model) are counted in their own columns, never $0."""
    users = (Column("user", "id"), Column("sessions USD", "number"), Column("unpriced rounds", "number"))
    sessions = (
        Column("session", "id"),
        Column("user", "id", 2),
        Column("model", "text", 1),
        Column("started", "time", 3),
        Column("USD", "number"),
        Column("unpriced rounds", "number"),
    )
    return [
        _pairs("Cost (USD)", list(zip([col.header for col in _SPEND], _spend(c), strict=True))),
        Grid("By model", (Column("model"), *_SPEND), tuple((m.model, *_spend(m)) for m in c.by_model)),
        Grid("By day", (Column("day"), *_SPEND), tuple((d.day, *_spend(d)) for d in c.by_day)),
        Grid("By user", users, tuple((u.user_id, u.cost_usd, u.unpriced_rounds) for u in c.by_user)),
        Grid("Top sessions", sessions,
             tuple((s.session_id, s.user_id, s.model, s.started_at, s.cost_usd, s.unpriced_rounds)
                   for s in c.top_sessions)),
    ]  # fmt: skip
