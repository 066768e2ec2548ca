"""Tool calls counted per tool over a span of UTC dates.

The dashboard's read, beyond the seed's, in two whole statements side by side: TOOLS_FROM_ROLLUP
sums the roll-ups (schema.sql: tool_rollup for the days before latency_fold's watermark,
tool_hourly for the later ones, as latency_daily and latency_hourly are read) and says in its
first column, ``rollups_ready``, whether it counts every row; TOOLS_FROM_BASE is the same read
over tool_call_metrics, run only while a back-fill is due. Dates are inclusive UTC dates of each
call's own ``started_at`` (as daily_metrics' tool breakdown): the roll-up's ``day``, the base
table's range on the bare column.
The last N UTC hours (``hours``, instead of dates: whole UTC hours, the current one so far) sum
tool_hourly (TOOLS_OF_HOURS), or tool_call_metrics while a back-fill is due (TOOLS_OF_HOURS_FROM_BASE).
"""

from __future__ import annotations

from datetime import date, datetime

from worker.read.models import ToolMetrics
from worker.read.queries._base import (
    Source,
    borrowed,
    check_date_range,
    hours_instead_of_dates,
    rollup_or_base,
)

TOOLS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('tool_calls')
) AS ready
LEFT JOIN (
    SELECT tool_name,
           sum(calls)::int8 AS calls,
           sum(succeeded)::int8 AS succeeded,
           sum(failed)::int8 AS failed,
           (sum(calls) - sum(succeeded) - sum(failed))::int8 AS unfinished
    FROM (
        SELECT tool_name, calls, succeeded, failed
        FROM tool_rollup
        WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
          AND day <= COALESCE(%(end_date)s::date, 'infinity')
          AND day < (SELECT folded_upto FROM latency_fold)
        UNION ALL
        SELECT tool_name, calls, succeeded, failed
        FROM tool_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                               (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
          AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    ) AS t
    GROUP BY tool_name
    HAVING sum(calls) > 0
) AS answer ON ready.rollups_ready
ORDER BY calls DESC, tool_name COLLATE "C"
"""

TOOLS_FROM_BASE = """
SELECT tool_name,
       count(*) AS calls,
       count(*) FILTER (WHERE success) AS succeeded,
       count(*) FILTER (WHERE NOT success) AS failed,
       count(*) FILTER (WHERE success IS NULL) AS unfinished
FROM tool_call_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND tool_name IS NOT NULL
GROUP BY tool_name
ORDER BY count(*) DESC, tool_name COLLATE "C"
"""

TOOLS_OF_HOURS = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('tool_calls')
) AS ready
LEFT JOIN (
    SELECT tool_name,
           sum(calls)::int8 AS calls,
           sum(succeeded)::int8 AS succeeded,
           sum(failed)::int8 AS failed,
           (sum(calls) - sum(succeeded) - sum(failed))::int8 AS unfinished
    FROM tool_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
    GROUP BY tool_name
    HAVING sum(calls) > 0
) AS answer ON ready.rollups_ready
ORDER BY calls DESC, tool_name COLLATE "C"
"""

TOOLS_OF_HOURS_FROM_BASE = """
SELECT tool_name,
       count(*) AS calls,
       count(*) FILTER (WHERE success) AS succeeded,
       count(*) FILTER (WHERE NOT success) AS failed,
       count(*) FILTER (WHERE success IS NULL) AS unfinished
FROM tool_call_metrics
WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
  AND tool_name IS NOT NULL
GROUP BY tool_name
ORDER BY count(*) DESC, tool_name COLLATE "C"
"""


def tool_metrics(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    hours: int | None = None,
    now: datetime | None = None,
) -> list[ToolMetrics]:
    """Per tool name: calls started in the dates (or the last ``hours``, 1..168, instead; ``now``
    for tests), how many succeeded, failed, are unfinished."""
    check_date_range(start_date, end_date)
    span = hours_instead_of_dates(hours, start_date, end_date, now)
    params = {"start_date": start_date, "end_date": end_date}
    with borrowed(source) as conn:
        if span is not None:
            hours_params = {"start_at": span[0], "end_at": span[1]}
            rows = rollup_or_base(conn, TOOLS_OF_HOURS, TOOLS_OF_HOURS_FROM_BASE, hours_params, "tool_name")
        else:
            rows = rollup_or_base(conn, TOOLS_FROM_ROLLUP, TOOLS_FROM_BASE, params, "tool_name")
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
