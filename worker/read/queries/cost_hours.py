"""The cost read of the last N UTC hours (cost_totals.cost with ``hours``): whole UTC hours
(hours_window), what the hourly roll-ups are keyed by.

Per model and per UTC day: round_hourly (one row per hour, model and slot) and forward_hourly (one
per hour, endpoint, model and slot), grouped by UTC date and model as the daily roll-ups are
(COST_ROWS_OF_HOURS_FROM_ROLLUP); with a user filter, and while a back-fill is due, from the base
rows (COST_ROWS_OF_HOURS). Per user (USERS_OF_HOURS_FROM_ROLLUP): the UTC days the hours touch from
user_cost_rollup, and of a day at either end of which they cover half or less, the sessions started
in those hours instead (added), else the sessions of its other hours subtracted (split_days): at
most half a day of sessions per end, and in the last hours up to now hardly any at the end (the
hours after the current one have not come). With a model filter (user_cost_rollup has no model key)
the sessions of all the hours (USERS_OF_HOURS). A roll-up per user by hour or by model, kept by the
session trigger, would make these flat, at about 2% of the apply (issue 23: left out). The top
sessions (TOP_SESSIONS_OF_HOURS) walk idx_session_cost in cost order.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg.rows import DictRow

from worker.read.queries._base import fetch_all, rollup_or_base

_DAY = timedelta(days=1)

# The last hours (whole UTC hours: hours_window) from the hourly roll-ups, grouped by UTC date and
# model as the daily ones are: rounds from round_hourly, forwards from forward_hourly.
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
    FROM forward_hourly
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

# Per user: the UTC days [days_from, days_to] from user_cost_rollup, plus the sessions started in
# [add_from, add_to) and [add2_from, add2_to), less those started in [sub_from, sub_to) and
# [sub2_from, sub2_to) (split_days; an unused range is empty).
USERS_OF_HOURS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('sessions')
) AS ready
LEFT JOIN (
    SELECT user_id, sum(cost_usd) AS cost_usd, sum(unpriced_rounds)::int8 AS unpriced_rounds
    FROM (
        SELECT user_id, cost_usd, unpriced_rounds
        FROM user_cost_rollup
        WHERE day >= %(days_from)s::date AND day <= %(days_to)s::date
        UNION ALL
        SELECT user_id, cost_usd, unpriced_rounds
        FROM session_metrics
        WHERE user_id IS NOT NULL
          AND ((started_at >= %(add_from)s::timestamptz AND started_at < %(add_to)s::timestamptz)
               OR (started_at >= %(add2_from)s::timestamptz AND started_at < %(add2_to)s::timestamptz))
        UNION ALL
        SELECT user_id, -cost_usd, -unpriced_rounds
        FROM session_metrics
        WHERE user_id IS NOT NULL
          AND ((started_at >= %(sub_from)s::timestamptz AND started_at < %(sub_to)s::timestamptz)
               OR (started_at >= %(sub2_from)s::timestamptz AND started_at < %(sub2_to)s::timestamptz))
    ) AS parts
    WHERE %(user_id)s::text IS NULL OR user_id = %(user_id)s
    GROUP BY user_id
    HAVING sum(cost_usd) <> 0 OR sum(unpriced_rounds) <> 0
    ORDER BY sum(cost_usd) DESC, user_id COLLATE "C"
    LIMIT %(top)s
) AS answer ON ready.rollups_ready
ORDER BY cost_usd DESC, user_id COLLATE "C"
"""

# From the sessions started in those hours: with a model filter (user_cost_rollup has no model key),
# and while a back-fill is due.
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
    live = end_at > datetime.now(UTC)  # the hours after end_at have not come yet
    params = {**params, "start_at": start_at, "end_at": end_at, **split_days(start_at, end_at, live=live)}
    if params["user_id"] is None:
        rows = rollup_or_base(conn, COST_ROWS_OF_HOURS_FROM_ROLLUP, COST_ROWS_OF_HOURS, params, "kind")
    else:
        rows = fetch_all(conn, COST_ROWS_OF_HOURS, params)
    if params["model"] is None:
        users = rollup_or_base(conn, USERS_OF_HOURS_FROM_ROLLUP, USERS_OF_HOURS, params, "user_id")
    else:
        users = fetch_all(conn, USERS_OF_HOURS, params)
    return rows, users, fetch_all(conn, TOP_SESSIONS_OF_HOURS, params)


def split_days(start_at: datetime, end_at: datetime, *, live: bool = False) -> dict[str, Any]:
    """USERS_OF_HOURS_FROM_ROLLUP's ranges for the whole UTC hours ``[start_at, end_at)``: the UTC
    days they touch from the daily roll-up, but of a day at either end that they cover half or less
    of, the sessions of those hours (added) instead; of an end day counted whole, the sessions of
    its hours outside the span (subtracted). ``live``: the hours after ``end_at`` have not come yet
    (no session started in them, or hardly any), so the last day is counted whole less them."""
    first, last = start_at.astimezone(UTC).date(), (end_at - timedelta(hours=1)).astimezone(UTC).date()
    days_from, days_to = first, last
    if first == last:
        ends = [(first, start_at, end_at)]
    else:
        ends = [(first, start_at, _midnight(first) + _DAY), (last, _midnight(last), end_at)]
    add: list[tuple[datetime, datetime]] = []
    sub: list[tuple[datetime, datetime]] = []
    for day, lo, hi in ends:
        if hi - lo == _DAY:
            continue
        if 2 * (hi - lo) <= _DAY and not (live and day == last and lo == _midnight(day)):
            add.append((lo, hi))  # those hours, not the day
            days_from = day + _DAY if day == first else days_from
            days_to = day - _DAY if day == last else days_to
        else:  # the day less its other hours
            sub += [r for r in ((_midnight(day), lo), (hi, _midnight(day) + _DAY)) if r[0] < r[1]]
    empty = [(start_at, start_at)] * 2
    (add_from, add_to), (add2_from, add2_to) = (add + empty)[:2]
    (sub_from, sub_to), (sub2_from, sub2_to) = (sub + empty)[:2]
    return {
        "days_from": days_from, "days_to": days_to, "add_from": add_from, "add_to": add_to,
        "add2_from": add2_from, "add2_to": add2_to, "sub_from": sub_from, "sub_to": sub_to,
        "sub2_from": sub2_from, "sub2_to": sub2_to,
    }  # fmt: skip


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
