"""What the agents cost over a span of UTC dates: total, per model, per day, per user, top sessions.

Exact USD (numeric) summed from the cost roll-ups (schema.sql: round_cost_rollup,
forward_rollup's cost columns, user_cost_rollup, user_model_cost_rollup, user_cost_monthly);
unpriced rows (a model no price list knows) are counted, never summed as $0. Per model and per
day are over rounds and forwards by the UTC date of their own ``started_at``; per user and the
top sessions are over sessions (a session's cost is its rounds'), by the session's ``started_at``,
and the model filter there is the session's model (as the session reads filter). With a user
filter the per-model and per-day figures come from the base rows of that user's sessions
(COST_ROWS_OF_USER: the roll-ups have no user key). Per user comes from user_cost_rollup (by day
and user; with a model filter user_model_cost_rollup, by session model too) and, for the whole
months of a long range, from user_cost_monthly (folded by the fold job: schema.sql's
latency_fold). The ``_FROM_BASE`` twins answer while a back-fill is due. Each read is whole
statements side by side, as everywhere.

The last N UTC hours (``hours``, instead of dates) are cost_hours.py's.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg.rows import DictRow

from worker.read.models import CostByDay, CostByModel, CostBySession, CostByUser, CostReport
from worker.read.queries._base import (
    MAX_LIMIT,
    QueryError,
    Source,
    check_date_range,
    check_text,
    fetch_all,
    hours_instead_of_dates,
    rollup_or_base,
    snapshot,
)
from worker.read.queries.cost_hours import cost_of_hours

DEFAULT_TOP = 10

COST_ROWS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 2 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('rounds', 'forwards')
) AS ready
LEFT JOIN (
    SELECT 'round' AS kind, day, model, sum(cost_usd) AS cost_usd, sum(priced)::int8 AS priced,
           sum(unpriced)::int8 AS unpriced
    FROM round_cost_rollup
    WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
      AND day <= COALESCE(%(end_date)s::date, 'infinity')
      AND (%(model)s::text IS NULL OR model = %(model)s)
    GROUP BY day, model
    HAVING sum(priced) <> 0 OR sum(unpriced) <> 0
    UNION ALL
    SELECT 'forward', day, model, sum(cost_usd), sum(priced)::int8, sum(unpriced)::int8
    FROM (  -- the folded days from forward_rollup, the later ones from their hours (latency_fold)
        SELECT day, model, cost_usd, priced, unpriced
        FROM forward_rollup
        WHERE day >= COALESCE(%(start_date)s::date, '-infinity')
          AND day <= COALESCE(%(end_date)s::date, 'infinity')
          AND day < (SELECT folded_upto FROM latency_fold)
        UNION ALL
        SELECT (hour AT TIME ZONE 'UTC')::date, model, cost_usd, priced, unpriced
        FROM forward_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_date)s::date, '-infinity'),
                               (SELECT folded_upto FROM latency_fold))::timestamp AT TIME ZONE 'UTC'
          AND hour < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
    ) AS t
    WHERE (%(model)s::text IS NULL OR model = %(model)s)
    GROUP BY day, model
    HAVING sum(priced) <> 0 OR sum(unpriced) <> 0
) AS answer ON ready.rollups_ready
"""

COST_ROWS_FROM_BASE = """
SELECT 'round' AS kind, (r.started_at AT TIME ZONE 'UTC')::date AS day, r.model,
       COALESCE(sum(r.cost_usd), 0) AS cost_usd, count(r.cost_usd) AS priced,
       count(*) FILTER (WHERE r.unpriced) AS unpriced
FROM round_metrics r
WHERE r.started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND r.started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND r.model IS NOT NULL AND (r.cost_usd IS NOT NULL OR r.unpriced)
  AND (%(model)s::text IS NULL OR r.model = %(model)s)
GROUP BY 2, 3
UNION ALL
SELECT 'forward', (f.started_at AT TIME ZONE 'UTC')::date, f.model,
       COALESCE(sum(f.cost_usd), 0), count(f.cost_usd), count(*) FILTER (WHERE f.unpriced)
FROM forward_request_metrics f
WHERE f.started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND f.started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND (f.cost_usd IS NOT NULL OR f.unpriced)
  AND (%(model)s::text IS NULL OR f.model = %(model)s)
GROUP BY 2, 3
"""

# With a user filter (the roll-ups have no user key): the rows of that user's sessions.
COST_ROWS_OF_USER = """
SELECT 'round' AS kind, (r.started_at AT TIME ZONE 'UTC')::date AS day, r.model,
       COALESCE(sum(r.cost_usd), 0) AS cost_usd, count(r.cost_usd) AS priced,
       count(*) FILTER (WHERE r.unpriced) AS unpriced
FROM round_metrics r
WHERE r.started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND r.started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND r.model IS NOT NULL AND (r.cost_usd IS NOT NULL OR r.unpriced)
  AND (%(model)s::text IS NULL OR r.model = %(model)s)
  AND r.session_id IN (SELECT s.session_id FROM session_metrics s WHERE s.user_id = %(user_id)s)
GROUP BY 2, 3
UNION ALL
SELECT 'forward', (f.started_at AT TIME ZONE 'UTC')::date, f.model,
       COALESCE(sum(f.cost_usd), 0), count(f.cost_usd), count(*) FILTER (WHERE f.unpriced)
FROM forward_request_metrics f
WHERE f.started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND f.started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND (f.cost_usd IS NOT NULL OR f.unpriced)
  AND (%(model)s::text IS NULL OR f.model = %(model)s)
  AND f.session_id IN (SELECT s.session_id FROM session_metrics s WHERE s.user_id = %(user_id)s)
GROUP BY 2, 3
"""

# Per user: the whole months of the dates (from ``months_from``, the first month that starts on or
# after start_date, to ``months_to``, the month after end_date's, exclusive) from user_cost_monthly,
# which holds their days before latency_fold.months_upto; every other day of the dates from
# user_cost_rollup: those before the first whole month, and those from the later of that month
# and of months_upto (at most months_to) on.
USERS_FROM_ROLLUP = """
WITH span AS (
    SELECT COALESCE(date_trunc('month', (%(start_date)s::date - 1)::timestamp + interval '1 month')::date,
                    '-infinity') AS months_from,
           COALESCE(date_trunc('month', (%(end_date)s::date + 1)::timestamp)::date, 'infinity') AS months_to,
           (SELECT months_upto FROM latency_fold) AS months_upto
)
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('sessions')
) AS ready
LEFT JOIN (
    SELECT user_id, sum(cost_usd) AS cost_usd, sum(unpriced_rounds)::int8 AS unpriced_rounds
    FROM (
        SELECT m.user_id, m.cost_usd, m.unpriced_rounds
        FROM user_cost_monthly AS m
        WHERE m.month >= (SELECT months_from FROM span) AND m.month < (SELECT months_to FROM span)
          AND (%(user_id)s::text IS NULL OR m.user_id = %(user_id)s)
        UNION ALL
        SELECT d.user_id, d.cost_usd, d.unpriced_rounds
        FROM user_cost_rollup AS d
        WHERE d.day >= COALESCE(%(start_date)s::date, '-infinity')
          AND d.day <= COALESCE(%(end_date)s::date, 'infinity')
          AND d.day < (SELECT months_from FROM span)
          AND (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s)
        UNION ALL
        SELECT d.user_id, d.cost_usd, d.unpriced_rounds
        FROM user_cost_rollup AS d
        WHERE d.day >= (SELECT GREATEST(months_from, LEAST(months_upto, months_to)) FROM span)
          AND d.day >= COALESCE(%(start_date)s::date, '-infinity')
          AND d.day <= COALESCE(%(end_date)s::date, 'infinity')
          AND (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s)
    ) AS parts
    GROUP BY user_id
    HAVING sum(cost_usd) <> 0 OR sum(unpriced_rounds) <> 0
    ORDER BY sum(cost_usd) DESC, user_id COLLATE "C"
    LIMIT %(top)s
) AS answer ON ready.rollups_ready
ORDER BY cost_usd DESC, user_id COLLATE "C"
"""

# The same of one session model: the days from user_model_cost_rollup.
USERS_OF_MODEL_FROM_ROLLUP = """
WITH span AS (
    SELECT COALESCE(date_trunc('month', (%(start_date)s::date - 1)::timestamp + interval '1 month')::date,
                    '-infinity') AS months_from,
           COALESCE(date_trunc('month', (%(end_date)s::date + 1)::timestamp)::date, 'infinity') AS months_to,
           (SELECT months_upto FROM latency_fold) AS months_upto
)
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('sessions')
) AS ready
LEFT JOIN (
    SELECT user_id, sum(cost_usd) AS cost_usd, sum(unpriced_rounds)::int8 AS unpriced_rounds
    FROM (
        SELECT m.user_id, m.cost_usd, m.unpriced_rounds
        FROM user_cost_monthly AS m
        WHERE m.month >= (SELECT months_from FROM span) AND m.month < (SELECT months_to FROM span)
          AND (%(user_id)s::text IS NULL OR m.user_id = %(user_id)s)
          AND m.model = %(model)s
        UNION ALL
        SELECT d.user_id, d.cost_usd, d.unpriced_rounds
        FROM user_model_cost_rollup AS d
        WHERE d.day >= COALESCE(%(start_date)s::date, '-infinity')
          AND d.day <= COALESCE(%(end_date)s::date, 'infinity')
          AND d.day < (SELECT months_from FROM span)
          AND (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s)
          AND d.model = %(model)s
        UNION ALL
        SELECT d.user_id, d.cost_usd, d.unpriced_rounds
        FROM user_model_cost_rollup AS d
        WHERE d.day >= (SELECT GREATEST(months_from, LEAST(months_upto, months_to)) FROM span)
          AND d.day >= COALESCE(%(start_date)s::date, '-infinity')
          AND d.day <= COALESCE(%(end_date)s::date, 'infinity')
          AND (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s)
          AND d.model = %(model)s
    ) AS parts
    GROUP BY user_id
    HAVING sum(cost_usd) <> 0 OR sum(unpriced_rounds) <> 0
    ORDER BY sum(cost_usd) DESC, user_id COLLATE "C"
    LIMIT %(top)s
) AS answer ON ready.rollups_ready
ORDER BY cost_usd DESC, user_id COLLATE "C"
"""

USERS_FROM_BASE = """
SELECT user_id, sum(cost_usd) AS cost_usd, sum(unpriced_rounds)::int8 AS unpriced_rounds
FROM session_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND user_id IS NOT NULL AND (cost_usd <> 0 OR unpriced_rounds <> 0)
  AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
  AND (%(model)s::text IS NULL OR model = %(model)s)
GROUP BY user_id
ORDER BY sum(cost_usd) DESC, user_id COLLATE "C"
LIMIT %(top)s
"""

TOP_SESSIONS = """
SELECT session_id, user_id, model, started_at, cost_usd, unpriced_rounds
FROM session_metrics
WHERE started_at >= COALESCE((%(start_date)s::date)::timestamp AT TIME ZONE 'UTC', '-infinity')
  AND started_at < COALESCE((%(end_date)s::date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity')
  AND (cost_usd <> 0 OR unpriced_rounds <> 0)
  AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
  AND (%(model)s::text IS NULL OR model = %(model)s)
ORDER BY cost_usd DESC, session_id COLLATE "C"
LIMIT %(top)s
"""


def cost(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    model: str | None = None,
    user_id: str | None = None,
    top: int = DEFAULT_TOP,
    hours: int | None = None,
    now: datetime | None = None,
) -> CostReport:
    """The cost of what started in the dates (inclusive UTC), or in the last ``hours`` (1..168,
    instead of dates; ``now`` for tests), of ``model``, of ``user_id``'s sessions: totals, per
    model, per UTC day, the ``top`` users and sessions by cost."""
    check_date_range(start_date, end_date)
    check_text("model", model)
    check_text("user_id", user_id)
    if not 1 <= top <= MAX_LIMIT:
        raise QueryError(f"top must be between 1 and {MAX_LIMIT}, got {top}", param="top")
    span = hours_instead_of_dates(hours, start_date, end_date, now)
    params: dict[str, Any] = {
        "start_date": start_date, "end_date": end_date, "model": model, "user_id": user_id, "top": top
    }  # fmt: skip
    with snapshot(source) as conn:
        if span is not None:
            return _report(*cost_of_hours(conn, params, span[0], span[1]))
        if user_id is None:
            rows = rollup_or_base(conn, COST_ROWS_FROM_ROLLUP, COST_ROWS_FROM_BASE, params, "kind")
        else:
            rows = fetch_all(conn, COST_ROWS_OF_USER, params)
        users_of = USERS_FROM_ROLLUP if model is None else USERS_OF_MODEL_FROM_ROLLUP
        users = rollup_or_base(conn, users_of, USERS_FROM_BASE, params, "user_id")
        sessions = fetch_all(conn, TOP_SESSIONS, params)
    return _report(rows, users, sessions)


def _report(rows: list[DictRow], users: list[DictRow], sessions: list[DictRow]) -> CostReport:
    models: dict[str, dict[str, Decimal | int]] = {}
    days: dict[date, dict[str, Decimal | int]] = {}
    zero: dict[str, Decimal | int] = {"round_usd": Decimal(0), "priced_rounds": 0, "unpriced_rounds": 0,
            "forward_usd": Decimal(0), "priced_forwards": 0, "unpriced_forwards": 0}  # fmt: skip
    day_models: dict[date, dict[str, Decimal]] = {}
    for row in rows:
        kind = "round" if row["kind"] == "round" else "forward"
        for bucket in (models.setdefault(row["model"], dict(zero)), days.setdefault(row["day"], dict(zero))):
            bucket[f"{kind}_usd"] += row["cost_usd"]
            bucket[f"priced_{kind}s"] += row["priced"]
            bucket[f"unpriced_{kind}s"] += row["unpriced"]
        if kind == "round" and row["priced"]:
            of_day = day_models.setdefault(row["day"], {})
            of_day[row["model"]] = of_day.get(row["model"], Decimal(0)) + row["cost_usd"]
    by_model = sorted(
        (CostByModel(model=name, **figures) for name, figures in models.items()),  # type: ignore[arg-type]
        key=lambda m: (-m.round_usd - m.forward_usd, m.model),
    )
    by_day = [
        CostByDay(day=day, **days[day], round_usd_by_model=dict(sorted(day_models.get(day, {}).items())))  # type: ignore[arg-type]
        for day in sorted(days)
    ]
    return CostReport(
        round_usd=sum((m.round_usd for m in by_model), Decimal(0)),
        priced_rounds=sum(m.priced_rounds for m in by_model),
        unpriced_rounds=sum(m.unpriced_rounds for m in by_model),
        forward_usd=sum((m.forward_usd for m in by_model), Decimal(0)),
        priced_forwards=sum(m.priced_forwards for m in by_model),
        unpriced_forwards=sum(m.unpriced_forwards for m in by_model),
        by_model=by_model,
        by_day=by_day,
        by_user=[CostByUser(**u) for u in users],
        top_sessions=[CostBySession(**s) for s in sessions],
    )
