"""The aggregate reads answered from the roll-ups (schema.sql: session_rollup, tool_rollup,
forward_rollup), column for column what the base-table statements next to each read return.

A roll-up row is one slot of a bucket; these statements sum the slots. A bucket whose rows all
moved out (a session that changed status, a pruned day) is left at zero, so every grouping keeps
only groups with a row in them (``HAVING sum(sessions) > 0``): the base tables' GROUP BY shows no
group without rows. Days are the buckets' UTC dates, which is what the seed filters on.

Until the roll-ups of a database written by an earlier version are back-filled
(``metrics-worker schema``), :func:`ready` is false and the reads use the base-table statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow

from worker.read.queries._base import fetch_all

_IN_DAYS = """
    day >= COALESCE(%(start_date)s::date, '-infinity') AND day <= COALESCE(%(end_date)s::date, 'infinity')"""

SUMMARY_SQL = (
    """
WITH sessions AS (
    SELECT COALESCE(sum(sessions), 0)::int8 AS total_sessions,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           COALESCE(sum(tool_call_count), 0) AS total_tool_calls,
           COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs,
           COALESCE(sum(total_compression_events), 0) AS total_compression_events,
           COALESCE(sum(total_tokens_saved), 0) AS total_tokens_saved,
           COALESCE(sum(sessions) FILTER (WHERE status = 'running'), 0) AS active_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'completed'), 0) AS completed_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'awaiting_response'), 0)
               AS awaiting_response_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'error'), 0) AS error_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'cancelled'), 0) AS cancelled_sessions
    FROM session_rollup
    WHERE"""
    + _IN_DAYS
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
       sum(sessions)::int8 AS sessions,
       sum(total_rounds) AS rounds,
       sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens,
       sum(total_tokens) AS total_tokens,
       sum(tool_call_count) AS tool_calls,
       sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs
FROM session_rollup
WHERE"""
    + _IN_DAYS
    + """
GROUP BY model
HAVING sum(sessions) > 0
ORDER BY sum(total_tokens) DESC, model COLLATE "C"
"""
)

DAILY_SQL = (
    """
WITH per_model AS (
    SELECT day, model,
           sum(sessions) AS sessions,
           sum(total_rounds) AS rounds,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(total_tokens) AS total_tokens,
           sum(tool_call_count) AS tool_calls,
           sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs
    FROM session_rollup
    WHERE"""
    + _IN_DAYS
    + """
    GROUP BY 1, 2
    HAVING sum(sessions) > 0
), per_day AS (
    SELECT day,
           sum(sessions) AS total_sessions,
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
        FROM tool_rollup
        WHERE"""
    + _IN_DAYS
    + """
        GROUP BY 1, 2
        HAVING sum(calls) > 0
    ) AS per_tool
    GROUP BY day
)
SELECT per_day.*, COALESCE(tools.tool_breakdown, '{}') AS tool_breakdown
FROM per_day LEFT JOIN tools USING (day)
ORDER BY day
"""
)

TOOLS_SQL = (
    """
SELECT tool_name,
       sum(calls)::int8 AS calls,
       sum(succeeded)::int8 AS succeeded,
       sum(failed)::int8 AS failed,
       (sum(calls) - sum(succeeded) - sum(failed))::int8 AS unfinished
FROM tool_rollup
WHERE"""
    + _IN_DAYS
    + """
GROUP BY tool_name
HAVING sum(calls) > 0
ORDER BY sum(calls) DESC, tool_name COLLATE "C"
"""
)

# The average duration: the exact sum of the completed requests' microseconds, in seconds (the
# base statement's EXTRACT(EPOCH FROM sum(interval))), and their count.
_FORWARD_TOTALS = """
       COALESCE(sum(requests), 0)::int8 AS requests,
       COALESCE(sum(successful), 0)::int8 AS successful,
       COALESCE(sum(failed), 0)::int8 AS failed,
       COALESCE(sum(timed_out), 0)::int8 AS timed_out,
       COALESCE(sum(pending), 0)::int8 AS pending,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       sum(duration_us) / 1000000.0 AS completed_seconds,
       COALESCE(sum(completed), 0)::int8 AS completed"""

FORWARD_SUMMARY_SQL = (
    "SELECT"
    + _FORWARD_TOTALS
    + """
FROM forward_rollup
WHERE"""
    + _IN_DAYS
    + """
  AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
"""
)

FORWARD_BY_ENDPOINT_SQL = (
    "SELECT endpoint,"
    + _FORWARD_TOTALS
    + """
FROM forward_rollup
WHERE"""
    + _IN_DAYS
    + """
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
GROUP BY endpoint
HAVING sum(requests) > 0
ORDER BY sum(requests) DESC, endpoint COLLATE "C"
"""
)

FORWARD_DAILY_SQL = (
    """
SELECT day,
       sum(requests)::int8 AS requests,
       sum(successful)::int8 AS successful,
       sum(failed)::int8 AS failed,
       sum(timed_out)::int8 AS timed_out,
       sum(pending)::int8 AS pending,
       sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens,
       sum(total_tokens) AS total_tokens
FROM forward_rollup
WHERE"""
    + _IN_DAYS
    + """
GROUP BY day
HAVING sum(requests) > 0
ORDER BY day
"""
)


@dataclass(frozen=True)
class Read:
    """An aggregate read: its statement over the roll-ups, which also says whether they are
    complete (column ``rollups_ready``), and the same read over the base tables."""

    rollup: str
    base: str


def read(rollup: str, base: str, entities: tuple[str, ...], order_by: str = "") -> Read:
    """The roll-up statement of a read, LEFT JOINed to the check that the roll-ups count every row
    of ``entities``, so that it answers in one statement and always returns a row.

    Not one statement with both branches (UNION ALL behind one-time filters): the planned base
    branch on a big history made PostgreSQL JIT-compile the statement, 60 ms of a 1.6 ms read.
    """
    names = ", ".join(f"'{name}'" for name in entities)
    ready = (
        f"SELECT count(*) = {len(entities)} AS rollups_ready FROM rollup_backfill "
        f"WHERE done AND entity IN ({names})"
    )
    return Read(
        f"SELECT ready.rollups_ready, answer.* FROM ({ready}) AS ready\n"
        f"LEFT JOIN ({rollup}) AS answer ON ready.rollups_ready\n"
        + (f"ORDER BY {order_by}\n" if order_by else ""),
        base,
    )


def fetch(conn: psycopg.Connection[Any], r: Read, params: dict[str, Any], key: str) -> list[DictRow]:
    """The rows of a read: from the roll-ups (one statement), or, while a back-fill is still to
    count some rows, from the base tables (a second). ``key``: a column no answer row has NULL
    (the row of a read with no answer rows has NULLs only)."""
    rows = fetch_all(conn, r.rollup, params)
    if rows and rows[0]["rollups_ready"]:
        return [row for row in rows if row[key] is not None]
    return fetch_all(conn, r.base, params)


READY_SQL = """
SELECT count(*) = cardinality(%(entities)s::text[])
FROM rollup_backfill
WHERE done AND entity = ANY(%(entities)s)
"""


def ready(conn: psycopg.Connection[Any], *entities: str) -> bool:
    """Whether the roll-ups count every row of these entities (``sessions``, ``tool_calls``,
    ``forwards``): true unless a back-fill is still to run or running."""
    row = conn.execute(READY_SQL, {"entities": list(entities)}, prepare=False).fetchone()
    return bool(row and row[0])
