"""What a rule's value is now: one whole statement per kind, or the pipeline's status view.

The status view is worker/status.py's, as ``metrics-worker status`` shows it.

Windows shorter than a day are sliding (rows started since ``now - window``) and read the base
tables through their ``started_at`` indexes (``(model, started_at)`` / ``(endpoint, started_at)``
where the filter names one). Windows of whole days are UTC dates, today included (``1d`` is today
so far, ``7d`` today and the six days before): they read the daily roll-ups where there is one
(tool calls, forwards, sessions; ``X_FROM_ROLLUP``) and its twin over the base table while a
back-fill is due; rounds have no roll-up, so their error share reads ``round_metrics`` for days
too, and so does any rule filtered or grouped by provider or user (the roll-ups keep neither:
``tokens`` by provider over days is then the rounds'). Round latency and time to first token
percentiles read the rounds of windows under a day (PostgreSQL's ``percentile_disc``); over days
they wait for the latency roll-ups (issue 23). ``tokens`` over days is the tokens of the sessions
started on those days (the session roll-up), over shorter windows that of the rounds started in
it.

Every statement returns ``label`` (the group's value, '' when the rule is not grouped), ``value``
and ``samples``; a share with no samples is 0. ``group_by`` picks the label column in the
statement itself (a CASE), so each read stays one text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from worker.alerts.evaluate import Reading
from worker.alerts.rules import Rule
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
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'tool_calls'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'tool' THEN tool_name ELSE '' END AS label,
           COALESCE(sum(failed)::float8 / NULLIF(sum(succeeded + failed), 0), 0) AS value,
           sum(succeeded + failed)::int8 AS samples
    FROM tool_rollup
    WHERE day >= %(first_day)s AND day <= %(last_day)s
      AND (%(tool)s::text IS NULL OR tool_name = %(tool)s)
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
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'forwards'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'model' THEN model WHEN 'endpoint' THEN endpoint ELSE '' END AS label,
           COALESCE(sum(failed + timed_out)::float8 / NULLIF(sum(successful + failed + timed_out), 0), 0)
               AS value,
           sum(successful + failed + timed_out)::int8 AS samples
    FROM forward_rollup
    WHERE day >= %(first_day)s AND day <= %(last_day)s
      AND (%(model)s::text IS NULL OR model = %(model)s)
      AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s)
    GROUP BY 1
) AS answer ON ready.rollups_ready
"""

SESSION_ERRORS = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'user' THEN COALESCE(user_id, '') ELSE ''
       END AS label,
       COALESCE(count(*) FILTER (WHERE status = 'error')::float8
                / NULLIF(count(*) FILTER (WHERE status IN ('completed', 'error', 'cancelled')), 0), 0)
           AS value,
       count(*) FILTER (WHERE status IN ('completed', 'error', 'cancelled')) AS samples
FROM session_metrics
WHERE started_at >= %(since)s
  AND (%(model)s::text IS NULL OR model = %(model)s)
  AND (%(user)s::text IS NULL OR user_id = %(user)s)
GROUP BY 1
"""

SESSION_ERRORS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'sessions'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'model' THEN model ELSE '' END AS label,
           COALESCE(sum(sessions) FILTER (WHERE status = 'error')::float8
                    / NULLIF(sum(sessions) FILTER (WHERE status IN ('completed', 'error', 'cancelled')), 0),
                    0) AS value,
           COALESCE(sum(sessions) FILTER (WHERE status IN ('completed', 'error', 'cancelled')), 0)::int8
               AS samples
    FROM session_rollup
    WHERE day >= %(first_day)s AND day <= %(last_day)s
      AND (%(model)s::text IS NULL OR model = %(model)s)
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

TOKENS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'sessions'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'model' THEN model ELSE '' END AS label,
           sum(total_tokens)::float8 AS value,
           sum(total_rounds)::int8 AS samples
    FROM session_rollup
    WHERE day >= %(first_day)s AND day <= %(last_day)s
      AND (%(model)s::text IS NULL OR model = %(model)s)
    GROUP BY 1
) AS answer ON ready.rollups_ready
"""

TOKENS_OF_SESSIONS = """
SELECT CASE %(group_by)s::text WHEN 'model' THEN COALESCE(model, '') ELSE '' END AS label,
       sum(total_tokens)::float8 AS value,
       sum(total_rounds)::int8 AS samples
FROM session_metrics
WHERE started_at >= %(since)s
  AND (%(model)s::text IS NULL OR model = %(model)s)
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

ROUND_LATENCY = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'provider' THEN COALESCE(provider, '') ELSE ''
       END AS label,
       percentile_disc(%(quantile)s::float8) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM completed_at - started_at) * 1000) AS value,
       count(*) AS samples
FROM round_metrics
WHERE started_at >= %(since)s
  AND status IN ('success', 'error') AND completed_at >= started_at
  AND (%(model)s::text IS NULL OR model = %(model)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
GROUP BY 1
"""

FIRST_TOKEN = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'provider' THEN COALESCE(provider, '') ELSE ''
       END AS label,
       percentile_disc(%(quantile)s::float8) WITHIN GROUP (ORDER BY time_to_first_token_ms) AS value,
       count(*) AS samples
FROM round_metrics
WHERE started_at >= %(since)s
  AND time_to_first_token_ms IS NOT NULL
  AND (%(model)s::text IS NULL OR model = %(model)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
GROUP BY 1
"""

COST = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'provider' THEN COALESCE(provider, '') ELSE ''
       END AS label,
       COALESCE(sum(cost_usd), 0)::float8 AS value,
       count(cost_usd) AS samples
FROM round_metrics
WHERE started_at >= %(since)s
  AND (%(model)s::text IS NULL OR model = %(model)s)
  AND (%(provider)s::text IS NULL OR provider = %(provider)s)
GROUP BY 1
"""

COST_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'rounds'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'model' THEN model WHEN 'provider' THEN provider ELSE '' END AS label,
           sum(cost_usd)::float8 AS value,
           sum(priced)::int8 AS samples
    FROM round_cost_rollup
    WHERE day >= %(first_day)s AND day <= %(last_day)s
      AND (%(model)s::text IS NULL OR model = %(model)s)
      AND (%(provider)s::text IS NULL OR provider = %(provider)s)
    GROUP BY 1
) AS answer ON ready.rollups_ready
"""

#: kind -> (its statement over the base tables, over the roll-ups for windows of days or None).
#: The base statement of tokens over days is TOKENS_OF_SESSIONS (the roll-up's twin), see below.
STATEMENTS: Mapping[str, tuple[str, str | None]] = {
    "round_error_share": (ROUND_ERRORS, None),
    "tool_error_share": (TOOL_ERRORS, TOOL_ERRORS_FROM_ROLLUP),
    "forward_error_share": (FORWARD_ERRORS, FORWARD_ERRORS_FROM_ROLLUP),
    "session_error_share": (SESSION_ERRORS, SESSION_ERRORS_FROM_ROLLUP),
    "tokens": (TOKENS, TOKENS_FROM_ROLLUP),
    "silence": (SILENCE, None),
    "round_latency_p95": (ROUND_LATENCY, None),  # days: not yet (kinds.py), no roll-up of durations
    "round_latency_p99": (ROUND_LATENCY, None),
    "time_to_first_token_p95": (FIRST_TOKEN, None),
    "cost_usd": (COST, COST_FROM_ROLLUP),
}

DAY = timedelta(days=1)

#: Filters and groupings the roll-ups cannot answer (they keep no provider or user).
BASE_ONLY = ("provider", "user")


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
    }


def statements_of(rule: Rule, now: datetime) -> tuple[str, str | None]:
    """The statement a rule reads with at ``now`` (roll-up first for windows of days), and its twin
    over the base tables (None when there is none to fall back to)."""
    base, rollup = STATEMENTS[rule.watch]
    if rollup is None or not span(rule, now)["days"]:
        return base, None
    if rule.group_by in BASE_ONLY or any(name in BASE_ONLY for name, _ in rule.filters):
        return base, None  # the roll-ups have no provider or user: the base table over the days
    return rollup, TOKENS_OF_SESSIONS if rule.watch == "tokens" else base


def measure_tables(conn: psycopg.Connection[Any], rule: Rule, now: datetime) -> list[Reading]:
    """The readings of a rule over the tables, one per label set found. Nothing in the window is
    one reading of 0 with no samples for a rule not grouped, and none for a grouped one (the
    caller gives the label sets it knows such a reading: worker/alerts/store.py ``steps``)."""
    first, fallback = statements_of(rule, now)
    params = parameters(rule, now)
    rows = _fetch(conn, first, params)
    if fallback is not None:
        if not (rows and rows[0]["rollups_ready"]):
            rows = _fetch(conn, fallback, params)
        else:
            rows = [row for row in rows if row["label"] is not None]
    readings = [
        Reading(_labels(rule, row["label"]), float(row["value"] or 0), int(row["samples"] or 0))
        for row in rows
    ]
    if not readings and not rule.group_by:  # nothing in the window: 0, no samples (a state all the same)
        return [Reading("", 0.0, 0)]
    return readings


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
