"""Sessions per UTC day: the daily read, with each day's tokens per model and calls per tool.

Two whole statements side by side, as session_totals.py explains: ``DAILY_FROM_ROLLUP`` sums the
roll-ups (session_rollup and tool_rollup before latency_fold's watermark, session_hourly and
tool_hourly from it),
``DAILY_FROM_BASE`` the base tables while a back-fill is
due; reconciled sessions are counted in ``total_sessions`` as the seed does, with
``reconciled_sessions`` saying how many of them.
"""

from __future__ import annotations

from datetime import date

from worker.read.models import DailyMetrics, TokenUsage
from worker.read.queries._base import (
    DEFAULT_DAYS,
    Source,
    borrowed,
    daily_window,
    rollup_or_base,
    token_usage,
)

# Per UTC day: totals and model breakdown from one grouping by (day, model); the tool breakdown
# by the UTC day of each tool call's own started_at, as the seed. Days without sessions are absent.
DAILY_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 2 AS rollups_ready FROM rollup_backfill
    WHERE done AND entity IN ('sessions', 'tool_calls')
) AS ready
LEFT JOIN (
    WITH per_model AS (
        SELECT day, model,
               sum(sessions) AS sessions,
               COALESCE(sum(sessions) FILTER (WHERE reconciled), 0) AS reconciled_sessions,
               sum(total_rounds) AS rounds,
               sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens,
               sum(total_tokens) AS total_tokens,
               sum(tool_call_count) AS tool_calls,
               sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs
        FROM (
            SELECT day, model, reconciled, sessions, total_rounds, prompt_tokens, completion_tokens,
                   total_tokens, tool_call_count, prompt_cached_tool_outputs
            FROM session_rollup
            WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
              AND day <= COALESCE(%(end_date)s::date, 'infinity')
              AND day < (SELECT folded_upto FROM latency_fold)
            UNION ALL
            SELECT (hour AT TIME ZONE 'UTC')::date, model, reconciled, sessions, total_rounds, prompt_tokens,
                   completion_tokens, total_tokens, tool_call_count, prompt_cached_tool_outputs
            FROM session_hourly
            WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                                   (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
              AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
        ) AS s
        GROUP BY 1, 2
        HAVING sum(sessions) > 0
    ), per_day AS (
        SELECT day,
               sum(sessions) AS total_sessions,
               sum(reconciled_sessions) AS reconciled_sessions,
               sum(rounds) AS total_rounds,
               sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens,
               sum(total_tokens) AS total_tokens,
               sum(tool_calls) AS total_tool_calls,
               sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs,
               jsonb_object_agg(model, jsonb_build_object(
                   'prompt_tokens', prompt_tokens,
                   'completion_tokens', completion_tokens,
                   'total_tokens', total_tokens)) AS model_breakdown
        FROM per_model
        GROUP BY day
    ), tools AS (
        SELECT day, jsonb_object_agg(tool_name, calls) AS tool_breakdown
        FROM (
            SELECT day, tool_name, sum(calls)::int8 AS calls
            FROM (
                SELECT day, tool_name, calls
                FROM tool_rollup
                WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
                  AND day <= COALESCE(%(end_date)s::date, 'infinity')
                  AND day < (SELECT folded_upto FROM latency_fold)
                UNION ALL
                SELECT (hour AT TIME ZONE 'UTC')::date, tool_name, calls
                FROM tool_hourly
                WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                                       (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
                  AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
            ) AS t
            GROUP BY 1, 2
            HAVING sum(calls) > 0
        ) AS per_tool
        GROUP BY day
    )
    SELECT per_day.*, COALESCE(tools.tool_breakdown, '{}') AS tool_breakdown
    FROM per_day LEFT JOIN tools USING (day)
) AS answer ON ready.rollups_ready
ORDER BY day
"""

DAILY_FROM_BASE = """
WITH per_model AS (
    SELECT (started_at AT TIME ZONE 'UTC')::date AS day, model,
           count(*) AS sessions,
           count(*) FILTER (WHERE reconciled_at IS NOT NULL) AS reconciled_sessions,
           sum(total_rounds) AS rounds,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(total_tokens) AS total_tokens,
           sum(tool_call_count) AS tool_calls,
           sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs
    FROM session_metrics
    WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
      AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    GROUP BY 1, 2
), per_day AS (
    SELECT day,
           sum(sessions) AS total_sessions,
           sum(reconciled_sessions) AS reconciled_sessions,
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
        WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
          AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
          AND tool_name IS NOT NULL
        GROUP BY 1, 2
    ) AS per_tool
    GROUP BY day
)
SELECT per_day.*, COALESCE(tools.tool_breakdown, '{}') AS tool_breakdown
FROM per_day LEFT JOIN tools USING (day)
ORDER BY day
"""


def daily_metrics(
    source: Source, *, days: int = DEFAULT_DAYS, end_date: date | None = None
) -> list[DailyMetrics]:
    """One row per UTC day with sessions, in the ``days`` days ending on ``end_date`` (default today,
    UTC), earliest first. ``days=0`` counts as 1, as the seed."""
    start, end = daily_window(days, end_date)
    params = {"start_date": start, "end_date": end}
    with borrowed(source) as conn:
        rows = rollup_or_base(conn, DAILY_FROM_ROLLUP, DAILY_FROM_BASE, params, "day")
    return [
        DailyMetrics(
            date=row["day"],
            total_sessions=row["total_sessions"],
            reconciled_sessions=row["reconciled_sessions"],
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
