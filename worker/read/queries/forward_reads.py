"""The seed's forward reads: forward_summary, forward_by_endpoint, forward_requests, forward_daily_metrics.

A forwarded request exists for readers once its start has arrived (``started_at IS NOT NULL``);
dates are inclusive UTC dates of ``started_at``. Every read is one statement; summary, by endpoint
and daily are answered from the roll-ups (rollup_sql.py) in the statement that checks they are
complete, the statements here being the same reads over the base table, used until then.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from worker.read.models import (
    ForwardDailyMetrics,
    ForwardEndpointMetrics,
    ForwardMetricsSummary,
    ForwardRequestMetrics,
)
from worker.read.queries import rollup_sql
from worker.read.queries._base import (
    DEFAULT_DAYS,
    STARTED_IN_DATES,
    Source,
    borrowed,
    check_date_range,
    check_text,
    daily_window,
    duration_ms,
    fetch_all,
    resolve_limit,
    token_usage,
)

# What summary and by-endpoint count. "failed" is status 'error' only, as the seed; timeouts and
# requests still pending are counted apart, so the outcomes add up to the requests. The average
# duration is over completed requests (the seed's AVG(CASE WHEN completed_at IS NOT NULL ...)):
# the exact sum of the intervals and their count, divided in Python (summing intervals is twice
# as fast as averaging numeric milliseconds per row, and exact).
_FORWARD_TOTALS = """
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS successful,
       count(*) FILTER (WHERE status = 'error') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       EXTRACT(EPOCH FROM sum(completed_at - started_at)) AS completed_seconds,
       count(completed_at) AS completed"""

FORWARD_SUMMARY_SQL = (
    "SELECT"
    + _FORWARD_TOTALS
    + """
FROM forward_request_metrics
WHERE"""
    + STARTED_IN_DATES
    + """
  AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
"""
)

FORWARD_BY_ENDPOINT_SQL = (
    "SELECT endpoint,"
    + _FORWARD_TOTALS
    + """
FROM forward_request_metrics
WHERE"""
    + STARTED_IN_DATES
    + """
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
GROUP BY endpoint
ORDER BY count(*) DESC, endpoint COLLATE "C"
"""
)

FORWARD_REQUESTS_SQL = (
    """
SELECT forward_id, endpoint, model, is_stream, started_at, completed_at, status_code, status,
       prompt_tokens, completion_tokens, total_tokens, error
FROM forward_request_metrics
WHERE"""
    + STARTED_IN_DATES
    + """
  AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
ORDER BY started_at DESC, forward_id COLLATE "C" DESC
LIMIT %(limit)s
"""
)

FORWARD_DAILY_SQL = (
    """
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
WHERE"""
    + STARTED_IN_DATES
    + """
GROUP BY 1
ORDER BY 1
"""
)

READ_FORWARD_SUMMARY = rollup_sql.read(rollup_sql.FORWARD_SUMMARY_SQL, FORWARD_SUMMARY_SQL, ("forwards",))
READ_FORWARD_BY_ENDPOINT = rollup_sql.read(
    rollup_sql.FORWARD_BY_ENDPOINT_SQL,
    FORWARD_BY_ENDPOINT_SQL,
    ("forwards",),
    'requests DESC, endpoint COLLATE "C"',
)
READ_FORWARD_DAILY = rollup_sql.read(rollup_sql.FORWARD_DAILY_SQL, FORWARD_DAILY_SQL, ("forwards",), "day")


def forward_summary(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    endpoint: str | None = None,
    model: str | None = None,
) -> ForwardMetricsSummary:
    check_date_range(start_date, end_date)
    check_text("endpoint", endpoint)
    check_text("model", model)
    params = {"start_date": start_date, "end_date": end_date, "endpoint": endpoint, "model": model}
    with borrowed(source) as conn:
        (row,) = rollup_sql.fetch(conn, READ_FORWARD_SUMMARY, params, "requests")
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
) -> list[ForwardEndpointMetrics]:
    """Per endpoint, most requests first (ties by endpoint). No endpoint filter, as the seed."""
    check_date_range(start_date, end_date)
    check_text("model", model)
    params = {"start_date": start_date, "end_date": end_date, "model": model}
    with borrowed(source) as conn:
        rows = rollup_sql.fetch(conn, READ_FORWARD_BY_ENDPOINT, params, "endpoint")
    return [
        ForwardEndpointMetrics(
            endpoint=row["endpoint"],
            **_outcomes(row),
            tokens=token_usage(row),
            avg_duration_ms=_average_ms(row),
        )
        for row in rows
    ]


def forward_requests(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    endpoint: str | None = None,
    model: str | None = None,
    limit: int | None = None,
) -> list[ForwardRequestMetrics]:
    """Latest requests first (ties by forward_id, descending); ``limit`` as for sessions."""
    check_date_range(start_date, end_date)
    check_text("endpoint", endpoint)
    check_text("model", model)
    params = {
        "start_date": start_date,
        "end_date": end_date,
        "endpoint": endpoint,
        "model": model,
        "limit": resolve_limit(limit),
    }
    with borrowed(source) as conn:
        rows = fetch_all(conn, FORWARD_REQUESTS_SQL, params)
    return [_request(row) for row in rows]


def forward_daily_metrics(
    source: Source, *, days: int = DEFAULT_DAYS, end_date: date | None = None
) -> list[ForwardDailyMetrics]:
    """Requests per UTC day in the window, counted by outcome as in forward_summary (the seed
    returned its sessions' DailyMetrics, requests in ``total_sessions``)."""
    start, end = daily_window(days, end_date)
    with borrowed(source) as conn:
        rows = rollup_sql.fetch(conn, READ_FORWARD_DAILY, {"start_date": start, "end_date": end}, "day")
    return [
        ForwardDailyMetrics(
            date=row["day"],
            **_outcomes(row),
            tokens=token_usage(row),
        )
        for row in rows
    ]


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


def _request(row: dict[str, Any]) -> ForwardRequestMetrics:
    tokens = (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"])
    return ForwardRequestMetrics(
        forward_id=row["forward_id"],
        endpoint=row["endpoint"],
        model=row["model"],
        is_stream=row["is_stream"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        status_code=row["status_code"],
        status=row["status"],
        token_usage=None if None in tokens else token_usage(row),
        error=row["error"],
        duration_ms=duration_ms(row["started_at"], row["completed_at"]),
    )
