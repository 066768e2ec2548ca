"""Session totals over a span of UTC dates: the summary and per model (per day: session_daily.py).

Each read has two whole statements side by side: ``X_FROM_ROLLUP`` sums the roll-ups
(schema.sql: session_rollup for the days before latency_fold's watermark, session_hourly for the
later ones, as tool_rollup and tool_hourly are read) and says in its first column, ``rollups_ready``,
whether they count every row; ``X_FROM_BASE`` is the same read over the base tables, run only
while a back-fill is due (a database written by an earlier version, until ``metrics-worker
schema`` has counted its rows). A roll-up row is one slot of a bucket and the statements sum the
slots; a bucket whose rows all moved out (a session that changed status, a pruned day) is left at
zero, so each grouping keeps only groups with a row in them (``HAVING sum(sessions) > 0``), as
the base tables' GROUP BY does.

Sessions the reconcile job closed (``reconciled_at`` set; the roll-ups' ``reconciled``) are
counted apart, in ``reconciled_sessions``: the summary's five status counts leave them out (a
crashed agent is no completion), so the six add up to ``total_sessions``; per model and per day
count them in ``sessions`` as the seed does, with ``reconciled_sessions`` saying how many of them.
A session closed by its own session.completed is counted exactly as the seed counts it.

Dates are inclusive UTC dates: the roll-ups' ``day``, the base tables' ``started_at`` as a range
on the bare column (the index on started_at serves it; NULL started_at, a start not yet arrived,
is left out; a NULL bound is open). Both readings give the same days whatever the session's
TimeZone.

The summary and per model also read the last N UTC hours (``hours``, instead of dates): whole UTC
hours, the current one so far, summed from session_hourly (session_hours.py), or from session_metrics
while a back-fill is due.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from worker.read.models import (
    MetricsSummary,
    ModelMetrics,
)
from worker.read.queries._base import (
    Source,
    borrowed,
    check_date_range,
    fetch_all,
    hours_instead_of_dates,
    rollup_or_base,
    token_usage,
)
from worker.read.queries.session_hours import (
    BY_MODEL_OF_HOURS,
    BY_MODEL_OF_HOURS_FROM_BASE,
    SUMMARY_OF_HOURS,
    SUMMARY_OF_HOURS_FROM_BASE,
)

# The sync mismatches have no roll-up twin: their table already counts per reason and UTC date. So
# the statement over the roll-ups carries them whether or not the roll-ups are ready (the only
# place they are read), and SUMMARY_FROM_BASE counts the sessions only.
SUMMARY_FROM_ROLLUP = """
SELECT ready.rollups_ready, sessions.*, mismatches.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('sessions')
) AS ready
LEFT JOIN (
    SELECT COALESCE(sum(sessions), 0)::int8 AS total_sessions,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           COALESCE(sum(tool_call_count), 0) AS total_tool_calls,
           COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs,
           COALESCE(sum(total_compression_events), 0) AS total_compression_events,
           COALESCE(sum(total_tokens_saved), 0) AS total_tokens_saved,
           COALESCE(sum(sessions) FILTER (WHERE status = 'running' AND NOT reconciled), 0) AS active_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'completed' AND NOT reconciled), 0)
               AS completed_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'awaiting_response' AND NOT reconciled), 0)
               AS awaiting_response_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'error' AND NOT reconciled), 0) AS error_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'cancelled' AND NOT reconciled), 0)
               AS cancelled_sessions,
           COALESCE(sum(sessions) FILTER (WHERE reconciled), 0) AS reconciled_sessions
    FROM (
        SELECT status, reconciled, sessions, prompt_tokens, completion_tokens, total_tokens, tool_call_count,
               prompt_cached_tool_outputs, total_compression_events, total_tokens_saved
        FROM session_rollup
        WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
          AND day <= COALESCE(%(end_date)s::date, 'infinity')
          AND day < (SELECT folded_upto FROM latency_fold)
        UNION ALL
        SELECT status, reconciled, sessions, prompt_tokens, completion_tokens, total_tokens, tool_call_count,
               prompt_cached_tool_outputs, total_compression_events, total_tokens_saved
        FROM session_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                               (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
          AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    ) AS s
) AS sessions ON ready.rollups_ready
CROSS JOIN (
    SELECT COALESCE(sum(total), 0) AS total_sync_mismatches,
           COALESCE(jsonb_object_agg(reason, total), '{}') AS sync_mismatch_breakdown
    FROM (
        SELECT reason, sum(count) AS total
        FROM execute_sync_mismatch_metrics
        WHERE mismatch_date >= COALESCE(%(start_date)s::date, '-infinity')
          AND mismatch_date <= COALESCE(%(end_date)s::date, 'infinity')
        GROUP BY reason
    ) AS per_reason
) AS mismatches
"""

SUMMARY_FROM_BASE = """
SELECT count(*) AS total_sessions,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       COALESCE(sum(tool_call_count), 0) AS total_tool_calls,
       COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs,
       COALESCE(sum(total_compression_events), 0) AS total_compression_events,
       COALESCE(sum(total_tokens_saved), 0) AS total_tokens_saved,
       count(*) FILTER (WHERE status = 'running' AND reconciled_at IS NULL) AS active_sessions,
       count(*) FILTER (WHERE status = 'completed' AND reconciled_at IS NULL) AS completed_sessions,
       count(*) FILTER (WHERE status = 'awaiting_response' AND reconciled_at IS NULL)
           AS awaiting_response_sessions,
       count(*) FILTER (WHERE status = 'error' AND reconciled_at IS NULL) AS error_sessions,
       count(*) FILTER (WHERE status = 'cancelled' AND reconciled_at IS NULL) AS cancelled_sessions,
       count(*) FILTER (WHERE reconciled_at IS NOT NULL) AS reconciled_sessions
FROM session_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
"""

BY_MODEL_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('sessions')
) AS ready
LEFT JOIN (
    SELECT model,
           sum(sessions)::int8 AS sessions,
           COALESCE(sum(sessions) FILTER (WHERE reconciled), 0)::int8 AS reconciled_sessions,
           sum(total_rounds) AS rounds,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(total_tokens) AS total_tokens,
           sum(tool_call_count) AS tool_calls,
           sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs
    FROM (
        SELECT model, reconciled, sessions, total_rounds, prompt_tokens, completion_tokens, total_tokens,
               tool_call_count, prompt_cached_tool_outputs
        FROM session_rollup
        WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
          AND day <= COALESCE(%(end_date)s::date, 'infinity')
          AND day < (SELECT folded_upto FROM latency_fold)
        UNION ALL
        SELECT model, reconciled, sessions, total_rounds, prompt_tokens, completion_tokens, total_tokens,
               tool_call_count, prompt_cached_tool_outputs
        FROM session_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                               (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
          AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    ) AS s
    GROUP BY model
    HAVING sum(sessions) > 0
) AS answer ON ready.rollups_ready
ORDER BY total_tokens DESC, model COLLATE "C"
"""

BY_MODEL_FROM_BASE = """
SELECT model,
       count(*) AS sessions,
       count(*) FILTER (WHERE reconciled_at IS NOT NULL) AS reconciled_sessions,
       COALESCE(sum(total_rounds), 0) AS rounds,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       COALESCE(sum(tool_call_count), 0) AS tool_calls,
       COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs
FROM session_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
GROUP BY model
ORDER BY sum(total_tokens) DESC, model COLLATE "C"
"""


def summary(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    hours: int | None = None,
    now: datetime | None = None,
) -> MetricsSummary:
    """Totals over the sessions started in the dates, with sync mismatches of the same dates; or,
    with ``hours`` (1..168, instead of dates), in the last that many UTC hours (the current one so
    far included; ``now`` for tests), with the sync mismatches of the UTC dates they touch."""
    check_date_range(start_date, end_date)
    span = hours_instead_of_dates(hours, start_date, end_date, now)
    if span is not None:
        params: dict[str, Any] = {"start_at": span[0], "end_at": span[1]}
        from_rollup, from_base = SUMMARY_OF_HOURS, SUMMARY_OF_HOURS_FROM_BASE
    else:
        params = {"start_date": start_date, "end_date": end_date}
        from_rollup, from_base = SUMMARY_FROM_ROLLUP, SUMMARY_FROM_BASE
    with borrowed(source) as conn:
        (found,) = fetch_all(conn, from_rollup, params)
        row = dict(found)
        if not row["rollups_ready"]:  # the sessions' columns are NULL: count them from the base table
            (sessions,) = fetch_all(conn, from_base, params)
            row.update(sessions)
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
        reconciled_sessions=row["reconciled_sessions"],
        total_sync_mismatches=row["total_sync_mismatches"],
        sync_mismatch_breakdown=dict(sorted(row["sync_mismatch_breakdown"].items())),
    )


def by_model(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    hours: int | None = None,
    now: datetime | None = None,
) -> list[ModelMetrics]:
    """Per model, most tokens first (ties by model name); the dates, or the last ``hours``."""
    check_date_range(start_date, end_date)
    span = hours_instead_of_dates(hours, start_date, end_date, now)
    params = {"start_date": start_date, "end_date": end_date}
    with borrowed(source) as conn:
        if span is not None:
            hours_params = {"start_at": span[0], "end_at": span[1]}
            rows = rollup_or_base(conn, BY_MODEL_OF_HOURS, BY_MODEL_OF_HOURS_FROM_BASE, hours_params, "model")
        else:
            rows = rollup_or_base(conn, BY_MODEL_FROM_ROLLUP, BY_MODEL_FROM_BASE, params, "model")
    return [
        ModelMetrics(
            model=row["model"],
            sessions=row["sessions"],
            reconciled_sessions=row["reconciled_sessions"],
            rounds=row["rounds"],
            tokens=token_usage(row),
            tool_calls=row["tool_calls"],
            prompt_cached_tool_outputs=row["prompt_cached_tool_outputs"],
        )
        for row in rows
    ]
