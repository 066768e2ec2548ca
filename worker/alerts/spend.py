"""What the rounds cost in a window: by model and provider, or by user through the sessions.

Under a day: the priced rounds started in the window (``round_metrics``; a user's through their
session in ``session_metrics``), samples the priced rounds. Over days: ``round_cost_rollup`` (by
model and provider, UTC date of the round's start) or ``user_cost_rollup`` (by user: the cost of
the sessions the user started on those days, samples the days with a cost), each with its twin
over the base tables for while a back-fill is due. Unpriced rounds add nothing, never $0.
"""

from __future__ import annotations

COST = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(r.model, '') WHEN 'provider' THEN COALESCE(r.provider, '')
           WHEN 'user' THEN COALESCE(s.user_id, '') ELSE ''
       END AS label,
       COALESCE(sum(r.cost_usd), 0)::float8 AS value,
       count(r.cost_usd) AS samples
FROM round_metrics AS r
LEFT JOIN session_metrics AS s
       ON s.session_id = r.session_id AND (%(user)s::text IS NOT NULL OR %(group_by)s::text = 'user')
WHERE r.started_at >= %(since)s
  AND (%(model)s::text IS NULL OR r.model = %(model)s)
  AND (%(provider)s::text IS NULL OR r.provider = %(provider)s)
  AND (%(user)s::text IS NULL OR s.user_id = %(user)s)
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

USER_COST_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'sessions'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'user' THEN user_id ELSE '' END AS label,
           sum(cost_usd)::float8 AS value,
           count(*) AS samples
    FROM (
        SELECT day, user_id, sum(cost_usd) AS cost_usd
        FROM user_cost_rollup
        WHERE day >= %(first_day)s AND day <= %(last_day)s
          AND (%(user)s::text IS NULL OR user_id = %(user)s)
        GROUP BY day, user_id
        HAVING sum(cost_usd) <> 0
    ) AS days
    GROUP BY 1
) AS answer ON ready.rollups_ready
"""

USER_COST_OF_SESSIONS = """
SELECT CASE %(group_by)s::text WHEN 'user' THEN user_id ELSE '' END AS label,
       sum(cost_usd)::float8 AS value,
       count(*) AS samples
FROM (
    SELECT (started_at AT TIME ZONE 'UTC')::date AS day, user_id, sum(cost_usd) AS cost_usd
    FROM session_metrics
    WHERE started_at >= %(since)s AND user_id IS NOT NULL
      AND (%(user)s::text IS NULL OR user_id = %(user)s)
    GROUP BY day, user_id
    HAVING sum(cost_usd) <> 0
) AS days
GROUP BY 1
"""
