"""Forwarded requests one at a time, latest first.

A forwarded request exists for readers once its start has arrived (``started_at IS NOT NULL``);
dates are inclusive UTC dates of ``started_at``, read as a range on the bare column (the index on
started_at serves it; a NULL bound is open).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from worker.read.models import ForwardRequestMetrics
from worker.read.queries._base import (
    Source,
    borrowed,
    check_date_range,
    check_text,
    duration_ms,
    fetch_all,
    resolve_limit,
    token_usage,
)

# The filters are written in: the reads are never server-prepared (_base.fetch_all), so PostgreSQL
# plans each with its values and a NULL filter folds away, leaving the index conditions of the
# filters given (endpoint, model or started_at).
FORWARD_REQUESTS = """
SELECT forward_id, endpoint, model, is_stream, started_at, completed_at, status_code, status,
       prompt_tokens, completion_tokens, total_tokens, error,
       provider, session_id, round_id, cache_read_tokens, cache_write_tokens, reasoning_tokens,
       time_to_first_token_ms
FROM forward_request_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
ORDER BY started_at DESC, forward_id COLLATE "C" DESC
LIMIT %(limit)s
"""


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
        rows = fetch_all(conn, FORWARD_REQUESTS, params)
    return [forward_request_of(row) for row in rows]


def forward_request_of(row: dict[str, Any]) -> ForwardRequestMetrics:
    """One row of forward_request_metrics as the reads show it (the list, a session's detail)."""
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
        provider=row["provider"],
        session_id=row["session_id"],
        round_id=row["round_id"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        time_to_first_token_ms=row["time_to_first_token_ms"],
    )
