"""What a rule's value is now: one whole statement per kind, or the pipeline's status view
(worker/status.py's, as ``metrics-worker status`` shows it).

Windows shorter than a day are sliding (rows started since ``now - window``) and read the base
tables through their ``started_at`` indexes (``(model, started_at)`` / ``(endpoint, started_at)``
where the filter names one). Windows of whole days are UTC dates, today included (``1d`` is today
so far, ``7d`` today and the six days before): they read a roll-up that keeps every key the rule
filters or groups by (``STATEMENTS``: each kind's roll-ups, with the keys each keeps;
``X_FROM_ROLLUP``) and its twin over the base table while a back-fill is due; with no such roll-up
they read the base table over the days. So: cost by provider reads ``round_cost_rollup``, cost by
user ``user_cost_rollup`` (the cost of the sessions the user started on those days, as ``tokens``
over days is the sessions'), rounds' error share by model ``round_hourly`` (over days: errors /
rounds started, a round still running counting as not failed: what that roll-up keeps); every
other rule filtered or grouped by provider or user over days reads the base tables
(``round_metrics``, ``session_metrics``, ``forward_request_metrics``).

The percentiles' statements are in worker/alerts/percentiles.py, the cost's in spend.py, the
sessions' (their error share, the tokens over days) in sessions.py. Every
statement returns ``label`` (the group's value, '' when not grouped), ``value`` and ``samples``
(a histogram: ``label``, ``bucket``, ``n``); a share with no samples is 0. ``group_by`` picks the
label column in the statement itself (a CASE), so each read stays one text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from worker.alerts.evaluate import Reading
from worker.alerts.percentiles import (
    FIRST_TOKEN,
    FIRST_TOKEN_BUCKETS,
    METRICS,
    ROUND_LATENCY,
    ROUND_LATENCY_BUCKETS,
    ROUND_LATENCY_FROM_ROLLUP,
    from_buckets,
)
from worker.alerts.rules import Rule
from worker.alerts.sessions import (
    SESSION_ERRORS,
    SESSION_ERRORS_FROM_ROLLUP,
    TOKENS_FROM_ROLLUP,
    TOKENS_OF_SESSIONS,
)
from worker.alerts.spend import COST, COST_FROM_ROLLUP, USER_COST_FROM_ROLLUP, USER_COST_OF_SESSIONS
from worker.status import PipelineStatus

ROUND_ERRORS = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'provider' THEN COALESCE(provider, '') ELSE ''
       END AS label,
       COALESCE(count(*) FILTER (WHERE status = 'error')::float8
                / NULLIF(count(*) FILTER (WHERE status IN ('success', 'error')), 0), 0) AS value,
       count(*) FILTER (WHERE status IN ('success', 'error')) AS samples
FROM round_metrics
WHERE started_at >= %(since)s
  AND (%(model)s::text IS NULL OR model = %(model)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
GROUP BY 1
"""

ROUND_ERRORS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'round_hourly'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'model' THEN model ELSE '' END AS label,
           COALESCE(sum(errors)::float8 / NULLIF(sum(rounds), 0), 0) AS value,
           sum(rounds)::int8 AS samples
    FROM round_hourly
    WHERE hour >= %(since)s
      AND (%(model)s::text IS NULL OR model = %(model)s)
    GROUP BY 1
) AS answer ON ready.rollups_ready
"""

ROUND_ERRORS_OF_STARTED = """
SELECT CASE %(group_by)s::text WHEN 'model' THEN model ELSE '' END AS label,
       COALESCE(count(*) FILTER (WHERE status = 'error')::float8 / NULLIF(count(*), 0), 0) AS value,
       count(*) AS samples
FROM round_metrics
WHERE started_at >= %(since)s AND model IS NOT NULL
  AND (%(model)s::text IS NULL OR model = %(model)s)
GROUP BY 1
"""

TOOL_ERRORS = """
SELECT CASE %(group_by)s::text WHEN 'tool' THEN COALESCE(tool_name, '') ELSE '' END AS label,
       COALESCE(count(*) FILTER (WHERE success IS FALSE)::float8
                / NULLIF(count(*) FILTER (WHERE success IS NOT NULL), 0), 0) AS value,
       count(*) FILTER (WHERE success IS NOT NULL) AS samples
FROM tool_call_metrics
WHERE started_at >= %(since)s
  AND (%(tool)s::text IS NULL OR tool_name = %(tool)s)
GROUP BY 1
"""

TOOL_ERRORS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'tool_calls') AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'tool' THEN tool_name ELSE '' END AS label,
           COALESCE(sum(failed)::float8 / NULLIF(sum(succeeded + failed), 0), 0) AS value,
           sum(succeeded + failed)::int8 AS samples
    FROM (SELECT tool_name, succeeded, failed FROM tool_rollup  -- folded days, then hours (latency_fold)
          WHERE day >= %(first_day)s AND day <= %(last_day)s AND day < (SELECT folded_upto FROM latency_fold)
          UNION ALL SELECT tool_name, succeeded, failed FROM tool_hourly
          WHERE hour >= GREATEST(%(first_day)s::date, (SELECT folded_upto FROM latency_fold))::timestamp
                AT TIME ZONE 'UTC' AND hour < (%(last_day)s::date + 1)::timestamp AT TIME ZONE 'UTC') AS t
    WHERE (%(tool)s::text IS NULL OR tool_name = %(tool)s)
    GROUP BY 1
) AS answer ON ready.rollups_ready
"""

FORWARD_ERRORS = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'endpoint' THEN COALESCE(endpoint, '')
           WHEN 'provider' THEN COALESCE(provider, '') ELSE ''
       END AS label,
       COALESCE(count(*) FILTER (WHERE status IN ('error', 'timeout'))::float8
                / NULLIF(count(*) FILTER (WHERE status <> 'pending'), 0), 0) AS value,
       count(*) FILTER (WHERE status <> 'pending') AS samples
FROM forward_request_metrics
WHERE started_at >= %(since)s
  AND (%(model)s::text IS NULL OR model = %(model)s)
  AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
GROUP BY 1
"""

FORWARD_ERRORS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'forwards') AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'model' THEN model WHEN 'endpoint' THEN endpoint ELSE '' END AS label,
           COALESCE(sum(failed + timed_out)::float8 / NULLIF(sum(successful + failed + timed_out), 0), 0)
               AS value, sum(successful + failed + timed_out)::int8 AS samples
    FROM (SELECT model, endpoint, successful, failed, timed_out FROM forward_rollup  -- as the tools' above
          WHERE day >= %(first_day)s AND day <= %(last_day)s AND day < (SELECT folded_upto FROM latency_fold)
          UNION ALL SELECT model, endpoint, successful, failed, timed_out FROM forward_hourly
          WHERE hour >= GREATEST(%(first_day)s::date, (SELECT folded_upto FROM latency_fold))::timestamp
                AT TIME ZONE 'UTC' AND hour < (%(last_day)s::date + 1)::timestamp AT TIME ZONE 'UTC') AS t
    WHERE (%(model)s::text IS NULL OR model = %(model)s)
      AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s)
    GROUP BY 1
) AS answer ON ready.rollups_ready
"""

TOKENS = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'provider' THEN COALESCE(provider, '') ELSE ''
       END AS label,
       sum(total_tokens)::float8 AS value,
       count(*) AS samples
FROM round_metrics
WHERE started_at >= %(since)s
  AND (%(model)s::text IS NULL OR model = %(model)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
GROUP BY 1
"""

SILENCE = """
SELECT '' AS label,
       (SELECT count(*) FROM (SELECT 1 FROM session_metrics
                              WHERE started_at >= %(since)s AND (%(model)s::text IS NULL OR model = %(model)s)
                                AND (%(user)s::text IS NULL OR user_id = %(user)s)
                                AND %(provider)s::text IS NULL
                              LIMIT 1000) AS s)
     + (SELECT count(*) FROM (SELECT 1 FROM round_metrics
                              WHERE started_at >= %(since)s AND (%(model)s::text IS NULL OR model = %(model)s)
                                AND (%(provider)s::text IS NULL OR provider = %(provider)s)
                                AND %(user)s::text IS NULL
                              LIMIT 1000) AS r)
     + (SELECT count(*) FROM (SELECT 1 FROM tool_call_metrics
                              WHERE started_at >= %(since)s AND %(model)s::text IS NULL
                                AND %(provider)s::text IS NULL AND %(user)s::text IS NULL
                              LIMIT 1000) AS t)
     + (SELECT count(*) FROM (SELECT 1 FROM forward_request_metrics
                              WHERE started_at >= %(since)s AND (%(model)s::text IS NULL OR model = %(model)s)
                                AND (%(provider)s::text IS NULL OR provider = %(provider)s)
                                AND %(user)s::text IS NULL
                              LIMIT 1000) AS f) AS value,
       0 AS samples
"""


@dataclass(frozen=True)
class DaysRead:
    """A roll-up that answers a kind over days: its statement, its twin over the base tables (read
    while the roll-up's back-fill is due) and the keys it keeps (the filters and group_by it can
    answer)."""

    rollup: str
    twin: str
    keys: tuple[str, ...]


_DURATIONS = DaysRead(ROUND_LATENCY_FROM_ROLLUP, ROUND_LATENCY_BUCKETS, ("model",))
_FIRST_TOKENS = DaysRead(ROUND_LATENCY_FROM_ROLLUP, FIRST_TOKEN_BUCKETS, ("model",))

#: kind -> its statement over the base tables (any window), and the roll-ups that answer it over
#: days, first fit first. A rule over days that no roll-up keeps the keys of reads the base one.
STATEMENTS: Mapping[str, tuple[str, tuple[DaysRead, ...]]] = {
    "round_error_share": (
        ROUND_ERRORS,
        (DaysRead(ROUND_ERRORS_FROM_ROLLUP, ROUND_ERRORS_OF_STARTED, ("model",)),),
    ),
    "tool_error_share": (TOOL_ERRORS, (DaysRead(TOOL_ERRORS_FROM_ROLLUP, TOOL_ERRORS, ("tool",)),)),
    "forward_error_share": (
        FORWARD_ERRORS,
        (DaysRead(FORWARD_ERRORS_FROM_ROLLUP, FORWARD_ERRORS, ("model", "endpoint")),),
    ),
    "session_error_share": (
        SESSION_ERRORS,
        (DaysRead(SESSION_ERRORS_FROM_ROLLUP, SESSION_ERRORS, ("model",)),),
    ),
    "tokens": (TOKENS, (DaysRead(TOKENS_FROM_ROLLUP, TOKENS_OF_SESSIONS, ("model",)),)),
    "silence": (SILENCE, ()),
    "round_latency_p95": (
        ROUND_LATENCY,
        (DaysRead(ROUND_LATENCY_FROM_ROLLUP, ROUND_LATENCY_BUCKETS, ("model",)),),
    ),
    "round_latency_p99": (
        ROUND_LATENCY,
        (DaysRead(ROUND_LATENCY_FROM_ROLLUP, ROUND_LATENCY_BUCKETS, ("model",)),),
    ),
    "time_to_first_token_p95": (
        FIRST_TOKEN,
        (DaysRead(ROUND_LATENCY_FROM_ROLLUP, FIRST_TOKEN_BUCKETS, ("model",)),),
    ),
    "cost_usd": (
        COST,
        (
            DaysRead(COST_FROM_ROLLUP, COST, ("model", "provider")),
            DaysRead(USER_COST_FROM_ROLLUP, USER_COST_OF_SESSIONS, ("user",)),
        ),
    ),
}

DAY = timedelta(days=1)


def span(rule: Rule, now: datetime) -> dict[str, Any]:
    """The window's parameters: ``since`` (the base tables), ``first_day``/``last_day`` (UTC
    dates, for windows of days)."""
    assert rule.window is not None
    today = now.astimezone(UTC).date()
    if rule.window >= DAY:
        first = today - (rule.window // DAY - 1) * DAY
        since = datetime.combine(first, time(0), tzinfo=UTC)
        return {"since": since, "first_day": first, "last_day": today, "days": True}
    return {"since": now - rule.window, "first_day": today, "last_day": today, "days": False}


def parameters(rule: Rule, now: datetime) -> dict[str, Any]:
    window = span(rule, now)
    return {
        "since": window["since"],
        "first_day": window["first_day"],
        "last_day": window["last_day"],
        "group_by": rule.group_by,
        "model": rule.filter("model"),
        "tool": rule.filter("tool"),
        "endpoint": rule.filter("endpoint"),
        "provider": rule.filter("provider"),
        "user": rule.filter("user"),
        "quantile": rule.kind.quantile,
        "metric": METRICS.get(rule.watch),
    }


def statements_of(rule: Rule, now: datetime) -> tuple[str, str | None]:
    """The statement a rule reads with at ``now`` (a roll-up first, for windows of days), and its
    twin over the base tables (None when there is none to fall back to)."""
    base, days = STATEMENTS[rule.watch]
    if not span(rule, now)["days"]:
        return base, None
    named = {name for name, _ in rule.filters} | ({rule.group_by} if rule.group_by else set())
    for read in days:
        if named <= set(read.keys):
            return read.rollup, read.twin
    return base, None  # no roll-up keeps what the rule names: the base table over the days


def measure_tables(conn: psycopg.Connection[Any], rule: Rule, now: datetime) -> list[Reading]:
    """The readings of a rule over the tables, one per label set found. Nothing in the window is
    one reading of 0 with no samples for a rule not grouped, and none for a grouped one (the
    caller gives the label sets it knows such a reading: worker/alerts/store.py ``steps``)."""
    readings = _readings(rule, read(conn, *statements_of(rule, now), parameters(rule, now)))
    if not readings and not rule.group_by:  # nothing in the window: 0, no samples (a state all the same)
        return [Reading("", 0.0, 0)]
    return readings


def read(
    conn: psycopg.Connection[Any], first: str, fallback: str | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rows of ``first`` or, while its roll-up's back-fill is due, of its twin ``fallback``."""
    rows = _fetch(conn, first, params)
    if fallback is not None and not (rows and rows[0]["rollups_ready"]):
        return _fetch(conn, fallback, params)
    return rows if fallback is None else [row for row in rows if row["label"] is not None]


def _readings(rule: Rule, rows: list[dict[str, Any]]) -> list[Reading]:
    if not rows or "counts" not in rows[0]:
        return [
            Reading(_labels(rule, row["label"]), float(row["value"] or 0), int(row["samples"] or 0))
            for row in rows
        ]
    q = rule.kind.quantile  # a histogram per label: the percentile off it
    assert q is not None
    return [
        Reading(_labels(rule, label), value, samples)
        for label, (value, samples) in from_buckets(rows, q).items()
    ]


def _labels(rule: Rule, label: str) -> str:
    return f"{rule.group_by}={label}" if rule.group_by else ""


def _fetch(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    # Never server-prepared: planned with its values, so a filter's IS NULL folds away and the
    # (model, started_at) index can serve it (as worker/read/queries does).
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(statement, params, prepare=False)
        return cur.fetchall()


def measure_pipeline(rule: Rule, status: PipelineStatus) -> list[Reading]:
    """A pipeline rule's reading from the status view (None value: the view cannot say)."""
    if rule.watch == "backlog":
        parts = (status.undelivered, status.pending, status.unrouted)
        value = None if None in parts else float(sum(n or 0 for n in parts))
    elif rule.watch == "lag_seconds":
        value = float(status.lag_seconds)
    else:
        value = float(status.dead_letters)
    return [Reading("", value, 1)]
