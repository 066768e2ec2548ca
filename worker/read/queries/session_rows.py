"""Sessions one at a time: the list in keyset pages, one session's detail.

A session exists for readers once its start has arrived (``started_at IS NOT NULL``); dates are
inclusive UTC dates of ``started_at``, read as a range on the bare column (the index on
started_at serves it; a NULL bound is open; the same days whatever the session's TimeZone).
sessions is one statement; session_detail four, whatever the number of rounds, tool calls and
forwards.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from worker.read.models import (
    RoundMetrics,
    SessionDetail,
    SessionMetrics,
    ToolCallMetrics,
    UnplacedToolCall,
)
from worker.read.queries._base import (
    QueryError,
    Source,
    borrowed,
    check_date_range,
    check_text,
    duration_ms,
    fetch_all,
    resolve_limit,
    snapshot,
    token_usage,
)
from worker.read.queries.forward_rows import forward_request_of

# A page and its tool breakdowns in one statement: the breakdown is one grouped scan over the
# page's sessions (index on tool_call_metrics.session_id), not one query per session. Paged by
# keyset: the first page, or the page older than the session ``cursor``, found along the
# started_at index at any depth (no OFFSET). The filters are written in: the reads are never
# server-prepared (_base.fetch_all), so PostgreSQL plans each with its values and a NULL filter
# folds away, leaving the index conditions of the filters given.
SESSIONS_OLDER = """
WITH page AS (
    SELECT session_id, model, started_at, completed_at, status, total_rounds,
           prompt_tokens, completion_tokens, total_tokens, tool_call_count,
           prompt_cached_tool_outputs, total_compression_events, total_tokens_saved, message_count,
           user_id, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, unpriced_rounds,
           reconciled_at
    FROM session_metrics
    WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
      AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
      AND (%(model)s::text IS NULL OR model = %(model)s::text)
      AND (%(cursor)s::text IS NULL OR (started_at, session_id COLLATE "C") < (
          SELECT c.started_at, c.session_id COLLATE "C" FROM session_metrics c
          WHERE c.session_id = %(cursor)s::text))
    ORDER BY started_at DESC, session_id COLLATE "C" DESC
    LIMIT %(limit)s
), tools AS (
    SELECT session_id, jsonb_object_agg(tool_name, calls) AS tool_breakdown
    FROM (
        SELECT session_id, tool_name, count(*) AS calls
        FROM tool_call_metrics
        WHERE session_id IN (SELECT session_id FROM page) AND tool_name IS NOT NULL
        GROUP BY session_id, tool_name
    ) AS per_tool
    GROUP BY session_id
)
SELECT page.*, COALESCE(tools.tool_breakdown, '{}') AS tool_breakdown
FROM page LEFT JOIN tools USING (session_id)
ORDER BY started_at DESC, session_id COLLATE "C" DESC
"""

# The page newer than the session ``cursor``: SESSIONS_OLDER walking the index the other way, the
# page still returned latest first.
SESSIONS_NEWER = """
WITH page AS (
    SELECT session_id, model, started_at, completed_at, status, total_rounds,
           prompt_tokens, completion_tokens, total_tokens, tool_call_count,
           prompt_cached_tool_outputs, total_compression_events, total_tokens_saved, message_count,
           user_id, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, unpriced_rounds,
           reconciled_at
    FROM session_metrics
    WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
      AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
      AND (%(model)s::text IS NULL OR model = %(model)s::text)
      AND (%(cursor)s::text IS NULL OR (started_at, session_id COLLATE "C") > (
          SELECT c.started_at, c.session_id COLLATE "C" FROM session_metrics c
          WHERE c.session_id = %(cursor)s::text))
    ORDER BY started_at ASC, session_id COLLATE "C" ASC
    LIMIT %(limit)s
), tools AS (
    SELECT session_id, jsonb_object_agg(tool_name, calls) AS tool_breakdown
    FROM (
        SELECT session_id, tool_name, count(*) AS calls
        FROM tool_call_metrics
        WHERE session_id IN (SELECT session_id FROM page) AND tool_name IS NOT NULL
        GROUP BY session_id, tool_name
    ) AS per_tool
    GROUP BY session_id
)
SELECT page.*, COALESCE(tools.tool_breakdown, '{}') AS tool_breakdown
FROM page LEFT JOIN tools USING (session_id)
ORDER BY started_at DESC, session_id COLLATE "C" DESC
"""

# One started session with its tool breakdown: the detail's first statement, and the check that a
# page's cursor names a session.
SESSION = """
SELECT session_id, model, started_at, completed_at, status, total_rounds,
       prompt_tokens, completion_tokens, total_tokens, tool_call_count,
       prompt_cached_tool_outputs, total_compression_events, total_tokens_saved, message_count,
       user_id, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, unpriced_rounds,
       reconciled_at,
       COALESCE((
           SELECT jsonb_object_agg(tool_name, calls)
           FROM (
               SELECT tool_name, count(*) AS calls
               FROM tool_call_metrics
               WHERE session_id = %(session_id)s AND tool_name IS NOT NULL
               GROUP BY tool_name
           ) AS per_tool
       ), '{}') AS tool_breakdown
FROM session_metrics
WHERE session_id = %(session_id)s AND started_at IS NOT NULL
"""

SESSION_ROUNDS = """
SELECT round_id, session_id, model, started_at, completed_at, status,
       prompt_tokens, completion_tokens, total_tokens, prompt_cached_tool_outputs,
       compression_count, tokens_saved, error,
       provider, cache_read_tokens, cache_write_tokens, reasoning_tokens, time_to_first_token_ms,
       cost_usd, unpriced
FROM round_metrics
WHERE session_id = %(session_id)s
ORDER BY started_at ASC NULLS LAST, round_id COLLATE "C"
"""

# The requests forwarded for the session (forward.started's session_id; the partial index on it),
# started ones only, as the forwards list shows them, earliest first.
SESSION_FORWARDS = """
SELECT forward_id, endpoint, model, is_stream, started_at, completed_at, status_code, status,
       prompt_tokens, completion_tokens, total_tokens, error,
       provider, session_id, round_id, cache_read_tokens, cache_write_tokens, reasoning_tokens,
       time_to_first_token_ms
FROM forward_request_metrics
WHERE session_id = %(session_id)s AND started_at IS NOT NULL
ORDER BY started_at ASC, forward_id COLLATE "C"
"""

# Every tool call of every round of the session, and those of the session whose round never
# arrived (or was pruned), in one statement; grouped by round in Python. A UNION, not an OR, so
# each half uses its index.
SESSION_TOOL_CALLS = """
SELECT * FROM (
    SELECT tool_call_id, round_id, tool_name, started_at, completed_at, success, error
    FROM tool_call_metrics
    WHERE round_id IN (SELECT round_id FROM round_metrics WHERE session_id = %(session_id)s)
    UNION
    SELECT tool_call_id, round_id, tool_name, started_at, completed_at, success, error
    FROM tool_call_metrics
    WHERE session_id = %(session_id)s
) AS t
ORDER BY started_at ASC NULLS LAST, tool_call_id COLLATE "C"
"""


def sessions(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    model: str | None = None,
    limit: int | None = None,
    before: str | None = None,
    after: str | None = None,
) -> list[SessionMetrics]:
    """Latest sessions first (ties by session_id, descending). ``limit``: 100 by default, at most
    1000 (larger is clamped, as the seed; below 1 is a QueryError). ``before`` / ``after``: a
    session id, for the page that follows it (older) or precedes it (newer) in that order; a
    QueryError when it names no started session (a mistake, or one pruned since)."""
    check_date_range(start_date, end_date)
    check_text("model", model)
    check_text("before", before)
    check_text("after", after)
    if before is not None and after is not None:
        raise QueryError("before and after both given: page from one session, older or newer", "before")
    which, cursor, sql = (
        ("after", after, SESSIONS_NEWER) if after is not None else ("before", before, SESSIONS_OLDER)
    )
    params = {
        "start_date": start_date,
        "end_date": end_date,
        "model": model,
        "limit": resolve_limit(limit),
        "cursor": cursor,
    }
    with borrowed(source) as conn:
        rows = fetch_all(conn, sql, params)
        if not rows and cursor is not None and not fetch_all(conn, SESSION, {"session_id": cursor}):
            raise QueryError(
                f"{which} {cursor!r} is no started session: page from a listed session's id", which
            )
    return [_session(row) for row in rows]


def session_detail(source: Source, session_id: str) -> SessionDetail | None:
    """The session, its rounds (earliest first) each with its tool calls, and the requests forwarded
    for it (earliest first), or None if not started."""
    check_text("session_id", session_id)
    params = {"session_id": session_id}
    with snapshot(source) as conn:
        found = fetch_all(conn, SESSION, params)
        if not found:
            return None
        round_rows = fetch_all(conn, SESSION_ROUNDS, params)
        tool_rows = fetch_all(conn, SESSION_TOOL_CALLS, params)
        forward_rows = fetch_all(conn, SESSION_FORWARDS, params)
    calls_by_round: dict[str, list[ToolCallMetrics]] = defaultdict(list)
    placed = {row["round_id"] for row in round_rows}
    orphans = []
    for row in tool_rows:  # in started_at order, as the statement returns them
        if row["round_id"] in placed:
            calls_by_round[row["round_id"]].append(_tool_call(row))
        else:
            orphans.append(UnplacedToolCall(round_id=row["round_id"], **_tool_call(row).model_dump()))
    rounds = [_round(row, calls_by_round.get(row["round_id"], [])) for row in round_rows]
    return SessionDetail(
        session=_session(found[0]),
        rounds=rounds,
        tool_calls_without_round=orphans,
        forwards=[forward_request_of(row) for row in forward_rows],
    )


def _session(row: dict[str, Any]) -> SessionMetrics:
    return SessionMetrics(
        session_id=row["session_id"],
        model=row["model"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        total_rounds=row["total_rounds"],
        total_token_usage=token_usage(row),
        tool_call_count=row["tool_call_count"],
        prompt_cached_tool_outputs=row["prompt_cached_tool_outputs"],
        total_compression_events=row["total_compression_events"],
        total_tokens_saved=row["total_tokens_saved"],
        tool_breakdown=dict(sorted(row["tool_breakdown"].items())),
        status=row["status"],
        message_count=row["message_count"],
        duration_ms=duration_ms(row["started_at"], row["completed_at"]),
        user_id=row["user_id"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        cost_usd=row["cost_usd"],
        unpriced_rounds=row["unpriced_rounds"],
        closed_by_reconcile=row["reconciled_at"] is not None,
        reconciled_at=row["reconciled_at"],
    )


def _round(row: dict[str, Any], tool_calls: list[ToolCallMetrics]) -> RoundMetrics:
    return RoundMetrics(
        round_id=row["round_id"],
        session_id=row["session_id"],
        model=row["model"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        token_usage=token_usage(row),
        tool_calls=tool_calls,
        status=row["status"],
        prompt_cached_tool_outputs=row["prompt_cached_tool_outputs"],
        compression_count=row["compression_count"],
        tokens_saved=row["tokens_saved"],
        error=row["error"],
        duration_ms=duration_ms(row["started_at"], row["completed_at"]),
        provider=row["provider"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        time_to_first_token_ms=row["time_to_first_token_ms"],
        cost_usd=row["cost_usd"],
        unpriced=row["unpriced"],
    )


def _tool_call(row: dict[str, Any]) -> ToolCallMetrics:
    return ToolCallMetrics(
        tool_call_id=row["tool_call_id"],
        tool_name=row["tool_name"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        success=row["success"],
        error=row["error"],
        duration_ms=duration_ms(row["started_at"], row["completed_at"]),
    )
