"""The cost read of the last N UTC hours (cost_totals.cost with ``hours``): whole UTC hours
(hours_window), what the hourly roll-ups are keyed by.

Per model and per UTC day: round_hourly and forward_cost_hourly, one row per hour, model and slot
(COST_ROWS_OF_HOURS_FROM_ROLLUP, grouped by UTC date and model as the daily roll-ups are); with a
user filter, and while a back-fill is due, from the base rows (COST_ROWS_OF_HOURS). Per user: the
sessions started in those hours through idx_session_started_at (USERS_OF_HOURS: what it costs
grows with the sessions of those hours: a roll-up by hour and user, kept by the session trigger,
cost the apply about 1-2% more than issue 23 allowed, and was left out). The top sessions
(TOP_SESSIONS_OF_HOURS) walk idx_session_cost in cost order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import DictRow

from worker.read.queries._base import fetch_all, rollup_or_base

# The last hours (whole UTC hours: hours_window) from the hourly roll-ups, grouped by UTC date and
# model as the daily ones are: rounds from round_hourly, forwards from forward_cost_hourly.
COST_ROWS_OF_HOURS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 2 AS rollups_ready
    FROM rollup_backfill WHERE done AND entity IN ('round_hourly', 'forwards')
) AS ready
LEFT JOIN (
    SELECT 'round' AS kind, (hour AT TIME ZONE 'UTC')::date AS day, model, sum(cost_usd) AS cost_usd,
           sum(priced)::int8 AS priced, sum(unpriced)::int8 AS unpriced
    FROM round_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
      AND (%(model)s::text IS NULL OR model = %(model)s)
    GROUP BY 2, 3
    HAVING sum(priced) <> 0 OR sum(unpriced) <> 0
    UNION ALL
    SELECT 'forward', (hour AT TIME ZONE 'UTC')::date, model, sum(cost_usd), sum(priced)::int8,
           sum(unpriced)::int8
    FROM forward_cost_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
      AND (%(model)s::text IS NULL OR model = %(model)s)
    GROUP BY 2, 3
    HAVING sum(priced) <> 0 OR sum(unpriced) <> 0
) AS answer ON ready.rollups_ready
"""

# From the base rows: while a back-fill is due, and with a user filter (no roll-up has a user key).
COST_ROWS_OF_HOURS = """
SELECT 'round' AS kind, (r.started_at AT TIME ZONE 'UTC')::date AS day, r.model,
       COALESCE(sum(r.cost_usd), 0) AS cost_usd, count(r.cost_usd) AS priced,
       count(*) FILTER (WHERE r.unpriced) AS unpriced
FROM round_metrics r
WHERE r.started_at >= %(start_at)s::timestamptz AND r.started_at < %(end_at)s::timestamptz
  AND r.model IS NOT NULL AND (r.cost_usd IS NOT NULL OR r.unpriced)
  AND (%(model)s::text IS NULL OR r.model = %(model)s)
  AND (%(user_id)s::text IS NULL
       OR r.session_id IN (SELECT s.session_id FROM session_metrics s WHERE s.user_id = %(user_id)s))
GROUP BY 2, 3
UNION ALL
SELECT 'forward', (f.started_at AT TIME ZONE 'UTC')::date, f.model,
       COALESCE(sum(f.cost_usd), 0), count(f.cost_usd), count(*) FILTER (WHERE f.unpriced)
FROM forward_request_metrics f
WHERE f.started_at >= %(start_at)s::timestamptz AND f.started_at < %(end_at)s::timestamptz
  AND (f.cost_usd IS NOT NULL OR f.unpriced)
  AND (%(model)s::text IS NULL OR f.model = %(model)s)
  AND (%(user_id)s::text IS NULL
       OR f.session_id IN (SELECT s.session_id FROM session_metrics s WHERE s.user_id = %(user_id)s))
GROUP BY 2, 3
"""

# Per user: the sessions started in those hours (no roll-up is by hour and user).
USERS_OF_HOURS = """
SELECT user_id, sum(cost_usd) AS cost_usd, sum(unpriced_rounds)::int8 AS unpriced_rounds
FROM session_metrics
WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
  AND user_id IS NOT NULL AND (cost_usd <> 0 OR unpriced_rounds <> 0)
  AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
  AND (%(model)s::text IS NULL OR model = %(model)s)
GROUP BY user_id
ORDER BY sum(cost_usd) DESC, user_id COLLATE "C"
LIMIT %(top)s
"""

TOP_SESSIONS_OF_HOURS = """
SELECT session_id, user_id, model, started_at, cost_usd, unpriced_rounds
FROM session_metrics
WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
  AND (cost_usd <> 0 OR unpriced_rounds <> 0)
  AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
  AND (%(model)s::text IS NULL OR model = %(model)s)
ORDER BY cost_usd DESC, session_id COLLATE "C"
LIMIT %(top)s
"""


def cost_of_hours(
    conn: psycopg.Connection[Any], params: dict[str, Any], start_at: datetime, end_at: datetime
) -> tuple[list[DictRow], list[DictRow], list[DictRow]]:
    """The rows per kind, day and model, the top users and the top sessions of ``[start_at,
    end_at)`` (``params``: cost_totals.cost's filters)."""
    params = {**params, "start_at": start_at, "end_at": end_at}
    if params["user_id"] is None:
        rows = rollup_or_base(conn, COST_ROWS_OF_HOURS_FROM_ROLLUP, COST_ROWS_OF_HOURS, params, "kind")
    else:
        rows = fetch_all(conn, COST_ROWS_OF_HOURS, params)
    users = fetch_all(conn, USERS_OF_HOURS, params)
    return rows, users, fetch_all(conn, TOP_SESSIONS_OF_HOURS, params)
