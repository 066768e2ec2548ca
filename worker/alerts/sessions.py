"""What the sessions say in a window: their error share, and the tokens over days.

Under a day: the sessions started in the window (``session_metrics``, through its ``started_at``
indexes; the tokens under a day are the rounds', in measure.py). Over days (UTC dates): the
session roll-ups, ``session_rollup`` for the days before latency_fold's watermark and
``session_hourly`` for the later ones (schema.sql), each with its twin over the base table for
while a back-fill is due. An error share counts the finished sessions (completed, error,
cancelled); the tokens' samples are the rounds.
"""

from __future__ import annotations

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
    FROM (SELECT model, status, sessions FROM session_rollup  -- folded days, then hours (latency_fold)
          WHERE day >= %(first_day)s AND day <= %(last_day)s AND day < (SELECT folded_upto FROM latency_fold)
          UNION ALL SELECT model, status, sessions FROM session_hourly
          WHERE hour >= GREATEST(%(first_day)s::date, (SELECT folded_upto FROM latency_fold))::timestamp
                AT TIME ZONE 'UTC' AND hour < (%(last_day)s::date + 1)::timestamp AT TIME ZONE 'UTC') AS s
    WHERE (%(model)s::text IS NULL OR model = %(model)s)
    GROUP BY 1
) AS answer ON ready.rollups_ready
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
    FROM (SELECT model, total_tokens, total_rounds FROM session_rollup  -- as the session errors' above
          WHERE day >= %(first_day)s AND day <= %(last_day)s AND day < (SELECT folded_upto FROM latency_fold)
          UNION ALL SELECT model, total_tokens, total_rounds FROM session_hourly
          WHERE hour >= GREATEST(%(first_day)s::date, (SELECT folded_upto FROM latency_fold))::timestamp
                AT TIME ZONE 'UTC' AND hour < (%(last_day)s::date + 1)::timestamp AT TIME ZONE 'UTC') AS s
    WHERE (%(model)s::text IS NULL OR model = %(model)s)
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
