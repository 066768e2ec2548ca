"""The seed's aggregate session reads: summary, by_model, daily_metrics (the lists and the
detail are in session_pages.py).

A session exists for readers once its start has arrived (``started_at IS NOT NULL``); dates are
inclusive UTC dates of ``started_at``. Each read is answered from the roll-ups (rollup_sql.py) in
one statement; the statements here are the same reads over the base tables.
"""

from __future__ import annotations

from datetime import date

from worker.read.models import (
    DailyMetrics,
    MetricsSummary,
    ModelMetrics,
    TokenUsage,
)
from worker.read.queries import rollup_sql
from worker.read.queries._base import (
    DEFAULT_DAYS,
    STARTED_IN_DATES,
    Source,
    borrowed,
    check_date_range,
    daily_window,
    token_usage,
)

SUMMARY_SQL = (
    """
WITH sessions AS (
    SELECT count(*) AS total_sessions,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           COALESCE(sum(tool_call_count), 0) AS total_tool_calls,
           COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs,
           COALESCE(sum(total_compression_events), 0) AS total_compression_events,
           COALESCE(sum(total_tokens_saved), 0) AS total_tokens_saved,
           count(*) FILTER (WHERE status = 'running') AS active_sessions,
           count(*) FILTER (WHERE status = 'completed') AS completed_sessions,
           count(*) FILTER (WHERE status = 'awaiting_response') AS awaiting_response_sessions,
           count(*) FILTER (WHERE status = 'error') AS error_sessions,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled_sessions
    FROM session_metrics
    WHERE"""
    + STARTED_IN_DATES
    + """
), mismatches AS (
    SELECT reason, sum(count) AS total
    FROM execute_sync_mismatch_metrics
    WHERE mismatch_date >= COALESCE(%(start_date)s::date, '-infinity')
      AND mismatch_date <= COALESCE(%(end_date)s::date, 'infinity')
    GROUP BY reason
)
SELECT sessions.*,
       (SELECT COALESCE(sum(total), 0) FROM mismatches) AS total_sync_mismatches,
       (SELECT COALESCE(jsonb_object_agg(reason, total), '{}') FROM mismatches) AS sync_mismatch_breakdown
FROM sessions
"""
)

BY_MODEL_SQL = (
    """
SELECT model,
       count(*) AS sessions,
       COALESCE(sum(total_rounds), 0) AS rounds,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       COALESCE(sum(tool_call_count), 0) AS tool_calls,
       COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs
FROM session_metrics
WHERE"""
    + STARTED_IN_DATES
    + """
GROUP BY model
ORDER BY sum(total_tokens) DESC, model COLLATE "C"
"""
)

# Per UTC day: totals and model breakdown from one grouping by (day, model); the tool breakdown
# by the UTC day of each tool call's own started_at, as the seed. Days without sessions are absent.
DAILY_SQL = (
    """
WITH per_model AS (
    SELECT (started_at AT TIME ZONE 'UTC')::date AS day, model,
           count(*) AS sessions,
           sum(total_rounds) AS rounds,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(total_tokens) AS total_tokens,
           sum(tool_call_count) AS tool_calls,
           sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs
    FROM session_metrics
    WHERE"""
    + STARTED_IN_DATES
    + """
    GROUP BY 1, 2
), per_day AS (
    SELECT day,
           sum(sessions) AS total_sessions,
           sum(rounds) AS total_rounds,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(total_tokens) AS total_tokens,
           sum(tool_calls) AS total_tool_calls,
           sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs,
           COALESCE(jsonb_object_agg(model, jsonb_build_object(
               'prompt_tokens', prompt_tokens,
               'completion_tokens', completion_tokens,
               'total_tokens', total_tokens)) FILTER (WHERE model IS NOT NULL), '{}') AS model_breakdown
    FROM per_model
    GROUP BY day
), tools AS (
    SELECT day, jsonb_object_agg(tool_name, calls) AS tool_breakdown
    FROM (
        SELECT (started_at AT TIME ZONE 'UTC')::date AS day, tool_name, count(*) AS calls
        FROM tool_call_metrics
        WHERE"""
    + STARTED_IN_DATES
    + """
          AND tool_name IS NOT NULL
        GROUP BY 1, 2
    ) AS per_tool
    GROUP BY day
)
SELECT per_day.*, COALESCE(tools.tool_breakdown, '{}') AS tool_breakdown
FROM per_day LEFT JOIN tools USING (day)
ORDER BY day
"""
)

READ_SUMMARY = rollup_sql.read(rollup_sql.SUMMARY_SQL, SUMMARY_SQL, ("sessions",))
READ_BY_MODEL = rollup_sql.read(
    rollup_sql.BY_MODEL_SQL, BY_MODEL_SQL, ("sessions",), 'total_tokens DESC, model COLLATE "C"'
)
READ_DAILY = rollup_sql.read(rollup_sql.DAILY_SQL, DAILY_SQL, ("sessions", "tool_calls"), "day")


def summary(
    source: Source, *, start_date: date | None = None, end_date: date | None = None
) -> MetricsSummary:
    """Totals over the sessions started in the dates, with sync mismatches of the same dates."""
    check_date_range(start_date, end_date)
    with borrowed(source) as conn:
        (row,) = rollup_sql.fetch(
            conn, READ_SUMMARY, {"start_date": start_date, "end_date": end_date}, "total_sessions"
        )
    return MetricsSummary(
        total_sessions=row["total_sessions"],
        total_tokens=token_usage(row),
        total_tool_calls=row["total_tool_calls"],
        prompt_cached_tool_outputs=row["prompt_cached_tool_outputs"],
        total_compression_events=row["total_compression_events"],
        total_tokens_saved=row["total_tokens_saved"],
        active_sessions=row["active_sessions"],
        completed_sessions=row["completed_sessions"],
        awaiting_response_sessions=row["awaiting_response_sessions"],
        error_sessions=row["error_sessions"],
        cancelled_sessions=row["cancelled_sessions"],
        total_sync_mismatches=row["total_sync_mismatches"],
        sync_mismatch_breakdown=dict(sorted(row["sync_mismatch_breakdown"].items())),
    )


def by_model(
    source: Source, *, start_date: date | None = None, end_date: date | None = None
) -> list[ModelMetrics]:
    """Per model, most tokens first (ties by model name)."""
    check_date_range(start_date, end_date)
    with borrowed(source) as conn:
        rows = rollup_sql.fetch(
            conn, READ_BY_MODEL, {"start_date": start_date, "end_date": end_date}, "model"
        )
    return [
        ModelMetrics(
            model=row["model"],
            sessions=row["sessions"],
            rounds=row["rounds"],
            tokens=token_usage(row),
            tool_calls=row["tool_calls"],
            prompt_cached_tool_outputs=row["prompt_cached_tool_outputs"],
        )
        for row in rows
    ]


def daily_metrics(
    source: Source, *, days: int = DEFAULT_DAYS, end_date: date | None = None
) -> list[DailyMetrics]:
    """One row per UTC day with sessions, in the ``days`` days ending on ``end_date`` (default today,
    UTC), earliest first. ``days=0`` counts as 1, as the seed."""
    start, end = daily_window(days, end_date)
    with borrowed(source) as conn:
        rows = rollup_sql.fetch(conn, READ_DAILY, {"start_date": start, "end_date": end}, "day")
    return [
        DailyMetrics(
            date=row["day"],
            total_sessions=row["total_sessions"],
            total_rounds=row["total_rounds"],
            total_token_usage=token_usage(row),
            total_tool_calls=row["total_tool_calls"],
            prompt_cached_tool_outputs=row["prompt_cached_tool_outputs"],
            model_breakdown={
                name: TokenUsage(**usage) for name, usage in sorted(row["model_breakdown"].items())
            },
            tool_breakdown=dict(sorted(row["tool_breakdown"].items())),
        )
        for row in rows
    ]
