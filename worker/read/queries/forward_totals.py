"""Forwarded requests counted by outcome over a span of UTC dates: in all, per endpoint, per day.

Summary, per endpoint and per day each have two whole statements side by side:
``X_FROM_ROLLUP`` sums the roll-ups (schema.sql: forward_rollup for the days before latency_fold's
watermark, forward_hourly for the later ones) and says in its first column,
``rollups_ready``, whether it counts every row; ``X_FROM_BASE`` is the same read over
forward_request_metrics, run only while a back-fill is due (a database written by an earlier
version, until ``metrics-worker schema`` has counted its rows). A bucket whose rows all moved
out is left at zero, so each grouping keeps only groups with a row in them, as the base table's
GROUP BY does. The dashboard's per-status read has no roll-up statement.

"failed" is status 'error' only, as the seed; timeouts and requests still pending are counted
apart, so the outcomes add up to the requests. The average duration is over completed requests
(the seed's AVG(CASE WHEN completed_at IS NOT NULL ...)): the exact sum of their durations in
seconds and their count, divided in Python (summing intervals is twice as fast as averaging
numeric milliseconds per row, and exact; the roll-up keeps microseconds).

Dates are inclusive UTC dates: the roll-up's ``day``, the base table's ``started_at`` as a range
on the bare column (the index on started_at serves it; a NULL bound is open). Filters are written
in: the reads are never server-prepared (_base.fetch_all), so a NULL filter folds away. The summary
and per endpoint also read the last N UTC hours (``hours``, instead of dates) from forward_hourly
(forward_hours.py).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from worker.read.models import (
    ForwardDailyMetrics,
    ForwardEndpointMetrics,
    ForwardEndpointStatuses,
    ForwardMetricsSummary,
)
from worker.read.queries._base import (
    DEFAULT_DAYS,
    Source,
    borrowed,
    check_date_range,
    check_text,
    daily_window,
    fetch_all,
    hours_instead_of_dates,
    rollup_or_base,
    token_usage,
)
from worker.read.queries.forward_hours import (
    FORWARD_BY_ENDPOINT_OF_HOURS,
    FORWARD_BY_ENDPOINT_OF_HOURS_FROM_BASE,
    FORWARD_SUMMARY_OF_HOURS,
    FORWARD_SUMMARY_OF_HOURS_FROM_BASE,
)

FORWARD_SUMMARY_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('forwards')
) AS ready
LEFT JOIN (
    SELECT COALESCE(sum(requests), 0)::int8 AS requests,
           COALESCE(sum(successful), 0)::int8 AS successful,
           COALESCE(sum(failed), 0)::int8 AS failed,
           COALESCE(sum(timed_out), 0)::int8 AS timed_out,
           COALESCE(sum(pending), 0)::int8 AS pending,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           sum(duration_us) / 1000000.0 AS completed_seconds,
           COALESCE(sum(completed), 0)::int8 AS completed
    FROM (
        SELECT endpoint, model, requests, successful, failed, timed_out, pending, prompt_tokens,
               completion_tokens, total_tokens, completed, duration_us
        FROM forward_rollup
        WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
          AND day <= COALESCE(%(end_date)s::date, 'infinity')
          AND day < (SELECT folded_upto FROM latency_fold)
        UNION ALL
        SELECT endpoint, model, requests, successful, failed, timed_out, pending, prompt_tokens,
               completion_tokens, total_tokens, completed, duration_us
        FROM forward_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                               (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
          AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    ) AS t
    WHERE (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
      AND (%(model)s::text IS NULL OR model = %(model)s::text)
) AS answer ON ready.rollups_ready
"""

FORWARD_SUMMARY_FROM_BASE = """
SELECT count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS successful,
       count(*) FILTER (WHERE status = 'error') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       EXTRACT(EPOCH FROM sum(completed_at - started_at)) AS completed_seconds,
       count(completed_at) AS completed
FROM forward_request_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
"""

FORWARD_BY_ENDPOINT_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('forwards')
) AS ready
LEFT JOIN (
    SELECT endpoint,
           COALESCE(sum(requests), 0)::int8 AS requests,
           COALESCE(sum(successful), 0)::int8 AS successful,
           COALESCE(sum(failed), 0)::int8 AS failed,
           COALESCE(sum(timed_out), 0)::int8 AS timed_out,
           COALESCE(sum(pending), 0)::int8 AS pending,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           sum(duration_us) / 1000000.0 AS completed_seconds,
           COALESCE(sum(completed), 0)::int8 AS completed
    FROM (
        SELECT endpoint, model, requests, successful, failed, timed_out, pending, prompt_tokens,
               completion_tokens, total_tokens, completed, duration_us
        FROM forward_rollup
        WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
          AND day <= COALESCE(%(end_date)s::date, 'infinity')
          AND day < (SELECT folded_upto FROM latency_fold)
        UNION ALL
        SELECT endpoint, model, requests, successful, failed, timed_out, pending, prompt_tokens,
               completion_tokens, total_tokens, completed, duration_us
        FROM forward_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                               (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
          AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    ) AS t
    WHERE (%(model)s::text IS NULL OR model = %(model)s::text)
    GROUP BY endpoint
    HAVING sum(requests) > 0
) AS answer ON ready.rollups_ready
ORDER BY requests DESC, endpoint COLLATE "C"
"""

FORWARD_BY_ENDPOINT_FROM_BASE = """
SELECT endpoint,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS successful,
       count(*) FILTER (WHERE status = 'error') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       EXTRACT(EPOCH FROM sum(completed_at - started_at)) AS completed_seconds,
       count(completed_at) AS completed
FROM forward_request_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
GROUP BY endpoint
ORDER BY count(*) DESC, endpoint COLLATE "C"
"""

FORWARD_DAILY_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('forwards')
) AS ready
LEFT JOIN (
    SELECT day,
           sum(requests)::int8 AS requests,
           sum(successful)::int8 AS successful,
           sum(failed)::int8 AS failed,
           sum(timed_out)::int8 AS timed_out,
           sum(pending)::int8 AS pending,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(total_tokens) AS total_tokens
    FROM (
        SELECT day, requests, successful, failed, timed_out, pending, prompt_tokens, completion_tokens,
               total_tokens
        FROM forward_rollup
        WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
          AND day <= COALESCE(%(end_date)s::date, 'infinity')
          AND day < (SELECT folded_upto FROM latency_fold)
        UNION ALL
        SELECT (hour AT TIME ZONE 'UTC')::date, requests, successful, failed, timed_out, pending,
               prompt_tokens, completion_tokens, total_tokens
        FROM forward_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                               (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
          AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    ) AS t
    GROUP BY day
    HAVING sum(requests) > 0
) AS answer ON ready.rollups_ready
ORDER BY day
"""

FORWARD_DAILY_FROM_BASE = """
SELECT (started_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS successful,
       count(*) FILTER (WHERE status = 'error') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens
FROM forward_request_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
GROUP BY 1
ORDER BY 1
"""

# The dashboard's: per endpoint, by status, from the base table.
FORWARD_STATUSES = """
SELECT endpoint,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS success,
       count(*) FILTER (WHERE status = 'error') AS error,
       count(*) FILTER (WHERE status = 'timeout') AS timeout,
       count(*) FILTER (WHERE status = 'pending') AS pending
FROM forward_request_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND endpoint IS NOT NULL
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
GROUP BY endpoint
ORDER BY count(*) DESC, endpoint COLLATE "C"
"""


def forward_summary(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    endpoint: str | None = None,
    model: str | None = None,
    hours: int | None = None,
    now: datetime | None = None,
) -> ForwardMetricsSummary:
    """Requests started in the dates (or the last ``hours``, 1..168, instead; ``now`` for tests),
    counted by outcome; only ``endpoint``'s and ``model``'s if given."""
    check_date_range(start_date, end_date)
    check_text("endpoint", endpoint)
    check_text("model", model)
    span = hours_instead_of_dates(hours, start_date, end_date, now)
    params: dict[str, Any] = {
        "start_date": start_date,
        "end_date": end_date,
        "endpoint": endpoint,
        "model": model,
    }
    with borrowed(source) as conn:
        if span is not None:
            params.update(start_at=span[0], end_at=span[1])
            (row,) = rollup_or_base(
                conn, FORWARD_SUMMARY_OF_HOURS, FORWARD_SUMMARY_OF_HOURS_FROM_BASE, params, "requests"
            )
        else:
            (row,) = rollup_or_base(
                conn, FORWARD_SUMMARY_FROM_ROLLUP, FORWARD_SUMMARY_FROM_BASE, params, "requests"
            )
    return ForwardMetricsSummary(
        total_requests=row["requests"],
        successful_requests=row["successful"],
        failed_requests=row["failed"],
        timed_out_requests=row["timed_out"],
        pending_requests=row["pending"],
        total_tokens=token_usage(row),
        avg_duration_ms=_average_ms(row),
    )


def forward_by_endpoint(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    model: str | None = None,
    hours: int | None = None,
    now: datetime | None = None,
) -> list[ForwardEndpointMetrics]:
    """Per endpoint, most requests first (ties by endpoint); the dates, or the last ``hours``. No
    endpoint filter, as the seed."""
    check_date_range(start_date, end_date)
    check_text("model", model)
    span = hours_instead_of_dates(hours, start_date, end_date, now)
    params: dict[str, Any] = {"start_date": start_date, "end_date": end_date, "model": model}
    with borrowed(source) as conn:
        if span is not None:
            params.update(start_at=span[0], end_at=span[1])
            rows = rollup_or_base(
                conn, FORWARD_BY_ENDPOINT_OF_HOURS, FORWARD_BY_ENDPOINT_OF_HOURS_FROM_BASE, params, "endpoint"
            )
        else:
            rows = rollup_or_base(
                conn, FORWARD_BY_ENDPOINT_FROM_ROLLUP, FORWARD_BY_ENDPOINT_FROM_BASE, params, "endpoint"
            )
    return [
        ForwardEndpointMetrics(
            endpoint=row["endpoint"],
            **_outcomes(row),
            tokens=token_usage(row),
            avg_duration_ms=_average_ms(row),
        )
        for row in rows
    ]


def forward_daily_metrics(
    source: Source, *, days: int = DEFAULT_DAYS, end_date: date | None = None
) -> list[ForwardDailyMetrics]:
    """Requests per UTC day in the window, counted by outcome as in forward_summary (the seed
    returned its sessions' DailyMetrics, requests in ``total_sessions``)."""
    start, end = daily_window(days, end_date)
    params = {"start_date": start, "end_date": end}
    with borrowed(source) as conn:
        rows = rollup_or_base(conn, FORWARD_DAILY_FROM_ROLLUP, FORWARD_DAILY_FROM_BASE, params, "day")
    return [
        ForwardDailyMetrics(
            date=row["day"],
            **_outcomes(row),
            tokens=token_usage(row),
        )
        for row in rows
    ]


def forward_statuses(
    source: Source, *, start_date: date | None = None, end_date: date | None = None, model: str | None = None
) -> list[ForwardEndpointStatuses]:
    """Per endpoint: forwarded requests started in the dates, by status (timeouts and pending too)."""
    check_date_range(start_date, end_date)
    check_text("model", model)
    params = {"start_date": start_date, "end_date": end_date, "model": model}
    with borrowed(source) as conn:
        rows = fetch_all(conn, FORWARD_STATUSES, params)
    return [ForwardEndpointStatuses(**row) for row in rows]


def _outcomes(row: dict[str, Any]) -> dict[str, int]:
    """The request counts by outcome, named as the per-endpoint and per-day models name them."""
    return {name: row[name] for name in ("requests", "successful", "failed", "timed_out", "pending")}


def _average_ms(row: dict[str, Any]) -> int | None:
    """Mean duration of the completed requests in whole ms, truncated toward zero; a negative
    mean (clock skew) is 0 and no completed request is None: the seed's ``avg.map(|d| d as u64)``."""
    seconds: Decimal | None = row["completed_seconds"]
    if not row["completed"] or seconds is None:
        return None
    return max(0, int(Fraction(seconds) * 1000 / row["completed"]))
