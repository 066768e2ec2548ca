"""The read side: one function per read of the seed, over PostgreSQL.

Each takes a psycopg connection (or a pool) first and keyword filters, checks the filters
(raising :class:`QueryError`, a ValueError, for a caller's mistake) and returns pydantic
models from :mod:`worker.read.models`. Dates are inclusive UTC dates of ``started_at``; rows
whose start event has not arrived yet are not shown. A read costs a fixed number of statements
whatever the size of its result (one each; session_detail four).

Every statement a read runs is one whole text, a module constant next to its caller that can be
pasted into psql (parameters are psycopg's ``%(name)s``): session_rows.py (the list, the detail),
session_totals.py (summary, per model; of the last hours: session_hours.py), session_daily.py
(per day), tool_totals.py,
forward_rows.py (the list),
forward_totals.py (summary, per endpoint, per day, per status), cost_totals.py (what it cost; of the
last hours: cost_hours.py),
ids.py (short ids), percentiles.py (percentiles per model, tool, endpoint), hourly.py (the hourly
series of rounds). An aggregate read answered from the roll-ups has two, side by side:
``X_FROM_ROLLUP`` and ``X_FROM_BASE``, its twin over the base tables while a back-fill is due.
"""

from __future__ import annotations

from worker.read.queries._base import (
    DEFAULT_DAYS,
    DEFAULT_HOURS,
    DEFAULT_LIMIT,
    MAX_DAYS,
    MAX_HOURS,
    MAX_LIMIT,
    QueryError,
    Source,
)
from worker.read.queries.cost_totals import DEFAULT_TOP, cost
from worker.read.queries.forward_rows import forward_requests
from worker.read.queries.forward_totals import (
    forward_by_endpoint,
    forward_daily_metrics,
    forward_statuses,
    forward_summary,
)
from worker.read.queries.hourly import hourly_series
from worker.read.queries.ids import sessions_ending_with
from worker.read.queries.percentiles import latency
from worker.read.queries.session_daily import daily_metrics
from worker.read.queries.session_rows import session_detail, sessions
from worker.read.queries.session_totals import by_model, summary
from worker.read.queries.tool_totals import tool_metrics

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_HOURS",
    "DEFAULT_LIMIT",
    "DEFAULT_TOP",
    "MAX_DAYS",
    "MAX_HOURS",
    "MAX_LIMIT",
    "QueryError",
    "Source",
    "by_model",
    "cost",
    "daily_metrics",
    "forward_by_endpoint",
    "forward_daily_metrics",
    "forward_requests",
    "forward_statuses",
    "forward_summary",
    "hourly_series",
    "latency",
    "session_detail",
    "sessions",
    "sessions_ending_with",
    "summary",
    "tool_metrics",
]
