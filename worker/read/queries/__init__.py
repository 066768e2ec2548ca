"""The read side: one function per read of the seed, over PostgreSQL.

Each takes a psycopg connection (or a pool) first and keyword filters, checks the filters
(raising :class:`QueryError`, a ValueError, for a caller's mistake) and returns pydantic
models from :mod:`worker.read.models`. Dates are inclusive UTC dates of ``started_at``; rows
whose start event has not arrived yet are not shown. A read costs a fixed number of statements
whatever the size of its result (one each; session_detail three).
"""

from __future__ import annotations

from worker.read.queries._base import DEFAULT_DAYS, DEFAULT_LIMIT, MAX_DAYS, MAX_LIMIT, QueryError, Source
from worker.read.queries.dashboard_reads import forward_statuses, tool_metrics
from worker.read.queries.forward_reads import (
    forward_by_endpoint,
    forward_daily_metrics,
    forward_requests,
    forward_summary,
)
from worker.read.queries.ids import sessions_ending_with
from worker.read.queries.session_pages import session_detail, sessions
from worker.read.queries.session_reads import by_model, daily_metrics, summary

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_LIMIT",
    "MAX_DAYS",
    "MAX_LIMIT",
    "QueryError",
    "Source",
    "by_model",
    "daily_metrics",
    "forward_by_endpoint",
    "forward_daily_metrics",
    "forward_requests",
    "forward_statuses",
    "forward_summary",
    "session_detail",
    "sessions",
    "sessions_ending_with",
    "summary",
    "tool_metrics",
]
