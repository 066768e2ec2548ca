"""Reads the dashboard needs beyond the seed's: tool calls by tool with their failures, forwarded
requests of each endpoint by status. Same conventions as the seed's reads: inclusive UTC dates of
``started_at`` (each row's own, as daily_metrics' tool breakdown). The tools read is answered from
the tool roll-up (rollup_sql.py) in the statement that checks it is complete; TOOLS_SQL is the same
read over the base table."""

from __future__ import annotations

from datetime import date

from worker.read.models import ForwardEndpointStatuses, ToolMetrics
from worker.read.queries import rollup_sql
from worker.read.queries._base import (
    STARTED_IN_DATES,
    Source,
    borrowed,
    check_date_range,
    check_text,
    fetch_all,
)

TOOLS_SQL = (
    """
SELECT tool_name,
       count(*) AS calls,
       count(*) FILTER (WHERE success) AS succeeded,
       count(*) FILTER (WHERE NOT success) AS failed,
       count(*) FILTER (WHERE success IS NULL) AS unfinished
FROM tool_call_metrics
WHERE"""
    + STARTED_IN_DATES
    + """
  AND tool_name IS NOT NULL
GROUP BY tool_name
ORDER BY count(*) DESC, tool_name COLLATE "C"
"""
)

READ_TOOLS = rollup_sql.read(
    rollup_sql.TOOLS_SQL, TOOLS_SQL, ("tool_calls",), 'calls DESC, tool_name COLLATE "C"'
)

FORWARD_STATUSES_SQL = (
    """
SELECT endpoint,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS success,
       count(*) FILTER (WHERE status = 'error') AS error,
       count(*) FILTER (WHERE status = 'timeout') AS timeout,
       count(*) FILTER (WHERE status = 'pending') AS pending
FROM forward_request_metrics
WHERE"""
    + STARTED_IN_DATES
    + """
  AND endpoint IS NOT NULL
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
GROUP BY endpoint
ORDER BY count(*) DESC, endpoint COLLATE "C"
"""
)


def tool_metrics(
    source: Source, *, start_date: date | None = None, end_date: date | None = None
) -> list[ToolMetrics]:
    """Per tool name: calls started in the dates, how many succeeded, failed, are unfinished."""
    check_date_range(start_date, end_date)
    with borrowed(source) as conn:
        params = {"start_date": start_date, "end_date": end_date}
        rows = rollup_sql.fetch(conn, READ_TOOLS, params, "tool_name")
    out = []
    for row in rows:
        finished = row["succeeded"] + row["failed"]
        out.append(
            ToolMetrics(
                tool_name=row["tool_name"],
                calls=row["calls"],
                succeeded=row["succeeded"],
                failed=row["failed"],
                unfinished=row["unfinished"],
                failure_share=row["failed"] / finished if finished else None,
            )
        )
    return out


def forward_statuses(
    source: Source, *, start_date: date | None = None, end_date: date | None = None, model: str | None = None
) -> list[ForwardEndpointStatuses]:
    """Per endpoint: forwarded requests started in the dates, by status (timeouts and pending too)."""
    check_date_range(start_date, end_date)
    check_text("model", model)
    with borrowed(source) as conn:
        rows = fetch_all(
            conn, FORWARD_STATUSES_SQL, {"start_date": start_date, "end_date": end_date, "model": model}
        )
    return [ForwardEndpointStatuses(**row) for row in rows]
