"""Folding the hourly roll-ups of past days into their daily ones (schema.sql: latency_fold): the
latency histograms (latency_hourly into latency_daily), the tool calls (tool_hourly into tool_rollup),
the forwards (forward_hourly into forward_rollup) and the sessions (session_hourly into session_rollup).

The roll-up moves write the hourly tables always and the daily ones only for days before
``latency_fold.folded_upto``; a read of whole days takes the days before it from the daily table and
the rest from the hourly one. The fold moves the watermark on to the UTC date of ``now - grace``
(yesterday, once the grace after midnight is over), a few days per transaction: under the
exclusive advisory lock that every move takes shared, it replaces the daily rows of those days by
the sums of their hours (one row per day and key, in slot 0, its ``raw`` form stored as the
latency reads send it: schema.sql latency_daily.raw) and moves
``folded_upto`` on, in one commit. Idempotent: a second run finds nothing due, and a day it
folds again would get the same sums. Nothing due, it takes no lock (applies never wait on it).

After the chunks, in one transaction under the same lock, it recounts the user cost of the months
from ``months_upto``'s to the new watermark's (user_cost_monthly, from user_model_cost_rollup's days
before ``folded_upto``) and moves ``months_upto`` to ``folded_upto``: reads of long ranges sum a row
per month and user, not per day.

Then it compacts the closed hours of latency_hourly under the same lock (worker/maintenance/compact.py):
one row per hour, metric and name, stored as the latency reads send it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from worker.maintenance.compact import DEFAULT_HOUR_GRACE, compact_hours

#: Late events of yesterday within this long after midnight (UTC) still land in the hourly tables only.
DEFAULT_GRACE = timedelta(hours=1)
#: Days folded per transaction: a long-stopped scheduler catches up in bounded chunks.
DEFAULT_CHUNK_DAYS = 7

DUE = "SELECT 1 FROM latency_fold WHERE folded_upto < %(target)s::date"

MONTHS_DUE = "SELECT 1 FROM latency_fold WHERE months_upto <> folded_upto"

LOCK = "SELECT pg_advisory_xact_lock(1919904877, 'latency_fold'::regclass::oid::int)"

# The chunk: from folded_upto (or, past days without hours, from the first day with some: a new
# database's is '-infinity') for at most %(days)s days, never past the target. Dates as text: the
# watermark may be '-infinity'. Its days' latency_daily, tool_rollup, forward_rollup and session_rollup
# rows go;
# they were empty, or the previous version's (schema.sql: latency_fold).
CLEAR = """
WITH w AS (
    SELECT f.folded_upto AS since,
           LEAST(%(target)s::date, GREATEST(f.folded_upto, COALESCE(LEAST(
               (SELECT (min(h.hour) AT TIME ZONE 'UTC')::date FROM latency_hourly AS h
                WHERE h.hour >= f.folded_upto::timestamp AT TIME ZONE 'UTC'),
               (SELECT (min(t.hour) AT TIME ZONE 'UTC')::date FROM tool_hourly AS t
                WHERE t.hour >= f.folded_upto::timestamp AT TIME ZONE 'UTC'),
               (SELECT (min(r.hour) AT TIME ZONE 'UTC')::date FROM forward_hourly AS r
                WHERE r.hour >= f.folded_upto::timestamp AT TIME ZONE 'UTC'),
               (SELECT (min(s.hour) AT TIME ZONE 'UTC')::date FROM session_hourly AS s
                WHERE s.hour >= f.folded_upto::timestamp AT TIME ZONE 'UTC')),
               %(target)s::date)) + %(days)s::int) AS upto
    FROM latency_fold AS f
    WHERE f.folded_upto < %(target)s::date
), gone AS (
    DELETE FROM latency_daily AS d USING w WHERE d.day >= w.since AND d.day < w.upto
), tools_gone AS (
    DELETE FROM tool_rollup AS d USING w WHERE d.day >= w.since AND d.day < w.upto
), forwards_gone AS (
    DELETE FROM forward_rollup AS d USING w WHERE d.day >= w.since AND d.day < w.upto
), sessions_gone AS (
    DELETE FROM session_rollup AS d USING w WHERE d.day >= w.since AND d.day < w.upto
)
SELECT w.since::text, w.upto::text FROM w
"""

FOLD = """
WITH buckets AS (
    SELECT (h.hour AT TIME ZONE 'UTC')::date AS day, h.metric, h.name, h.lo + u.k::int - 1 AS bucket,
           sum(u.n)::int AS n
    FROM latency_hourly AS h, unnest(h.counts) WITH ORDINALITY AS u(n, k)
    WHERE h.hour >= %(since)s::date::timestamp AT TIME ZONE 'UTC'
      AND h.hour < %(upto)s::date::timestamp AT TIME ZONE 'UTC'
      AND u.n <> 0
    GROUP BY 1, 2, 3, 4
    HAVING sum(u.n) <> 0
), folded AS (
    INSERT INTO latency_daily (day, metric, name, slot, lo, counts, raw)
    SELECT f.day, f.metric, f.name, 0, f.lo, f.counts, metrics_histogram_raw(f.counts)
    FROM (
        SELECT b.day, b.metric, b.name, min(b.bucket) AS lo,
               metrics_histogram(min(b.bucket), max(b.bucket), array_agg(b.bucket), array_agg(b.n)) AS counts
        FROM buckets AS b
        GROUP BY 1, 2, 3
    ) AS f
    ORDER BY 1, 2, 3
    RETURNING day
), tools AS (
    INSERT INTO tool_rollup (day, tool_name, slot, calls, succeeded, failed)
    SELECT (t.hour AT TIME ZONE 'UTC')::date AS day, t.tool_name, 0,
           sum(t.calls), sum(t.succeeded), sum(t.failed)
    FROM tool_hourly AS t
    WHERE t.hour >= %(since)s::date::timestamp AT TIME ZONE 'UTC'
      AND t.hour < %(upto)s::date::timestamp AT TIME ZONE 'UTC'
    GROUP BY 1, 2
    HAVING (sum(t.calls), sum(t.succeeded), sum(t.failed)) <> (0, 0, 0)
    ORDER BY 1, 2
    RETURNING day
), forwards AS (
    INSERT INTO forward_rollup (
        day, endpoint, model, slot, requests, successful, failed, timed_out, pending, prompt_tokens,
        completion_tokens, total_tokens, completed, duration_us, cost_usd, priced, unpriced)
    SELECT (r.hour AT TIME ZONE 'UTC')::date AS day, r.endpoint, r.model, 0, sum(r.requests),
           sum(r.successful), sum(r.failed), sum(r.timed_out), sum(r.pending), sum(r.prompt_tokens),
           sum(r.completion_tokens), sum(r.total_tokens), sum(r.completed), sum(r.duration_us),
           sum(r.cost_usd), sum(r.priced), sum(r.unpriced)
    FROM forward_hourly AS r
    WHERE r.hour >= %(since)s::date::timestamp AT TIME ZONE 'UTC'
      AND r.hour < %(upto)s::date::timestamp AT TIME ZONE 'UTC'
    GROUP BY 1, 2, 3
    HAVING (sum(r.requests), sum(r.successful), sum(r.failed), sum(r.timed_out), sum(r.pending),
            sum(r.prompt_tokens), sum(r.completion_tokens), sum(r.total_tokens), sum(r.completed),
            sum(r.duration_us), sum(r.cost_usd), sum(r.priced), sum(r.unpriced))
           <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ORDER BY 1, 2, 3
    RETURNING day
), sessions AS (
    INSERT INTO session_rollup (
        day, model, status, reconciled, slot, sessions, total_rounds, prompt_tokens, completion_tokens,
        total_tokens, tool_call_count, prompt_cached_tool_outputs, total_compression_events,
        total_tokens_saved)
    SELECT (s.hour AT TIME ZONE 'UTC')::date AS day, s.model, s.status, s.reconciled, 0, sum(s.sessions),
           sum(s.total_rounds), sum(s.prompt_tokens), sum(s.completion_tokens), sum(s.total_tokens),
           sum(s.tool_call_count), sum(s.prompt_cached_tool_outputs), sum(s.total_compression_events),
           sum(s.total_tokens_saved)
    FROM session_hourly AS s
    WHERE s.hour >= %(since)s::date::timestamp AT TIME ZONE 'UTC'
      AND s.hour < %(upto)s::date::timestamp AT TIME ZONE 'UTC'
    GROUP BY 1, 2, 3, 4
    HAVING (sum(s.sessions), sum(s.total_rounds), sum(s.prompt_tokens), sum(s.completion_tokens),
            sum(s.total_tokens), sum(s.tool_call_count), sum(s.prompt_cached_tool_outputs),
            sum(s.total_compression_events), sum(s.total_tokens_saved)) <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
    ORDER BY 1, 2, 3, 4
    RETURNING day
), moved AS (
    UPDATE latency_fold SET folded_upto = %(upto)s::date
)
SELECT count(DISTINCT day), count(*), (SELECT count(*) FROM tools), (SELECT count(*) FROM forwards),
       (SELECT count(*) FROM sessions)
FROM folded
"""


# After the days (same transaction, same lock): user_cost_monthly's months between months_upto and
# the new folded_upto recounted from user_model_cost_rollup's days before folded_upto, in slot 0, and
# months_upto set to folded_upto (schema.sql: latency_fold). Either way round: a watermark moved back
# recounts the months it leaves, with fewer days. The first fold counts every month ('-infinity').
# Their rows go first, in a statement of their own (a statement's insert could meet the keys its
# own delete has not removed yet), as the days' CLEAR before FOLD.
MONTHS_CLEAR = """
DELETE FROM user_cost_monthly AS m
USING latency_fold AS f
WHERE f.months_upto <> f.folded_upto
  AND m.month >= date_trunc('month', LEAST(f.months_upto, f.folded_upto)::timestamp)
"""

MONTHS = """
WITH w AS (
    SELECT f.folded_upto AS upto,
           date_trunc('month', LEAST(f.months_upto, f.folded_upto)::timestamp)::date AS since
    FROM latency_fold AS f
    WHERE f.months_upto <> f.folded_upto
), counted AS (
    INSERT INTO user_cost_monthly (month, user_id, model, slot, cost_usd, unpriced_rounds)
    SELECT date_trunc('month', d.day::timestamp)::date, d.user_id, d.model, 0, sum(d.cost_usd),
           sum(d.unpriced_rounds)
    FROM user_model_cost_rollup AS d, w
    WHERE d.day >= w.since AND d.day < w.upto
    GROUP BY 1, 2, 3
    HAVING sum(d.cost_usd) <> 0 OR sum(d.unpriced_rounds) <> 0
    ORDER BY 1, 2, 3
    RETURNING 1
), moved AS (
    UPDATE latency_fold SET months_upto = w.upto FROM w
)
SELECT count(*) FROM counted
"""


def fold_target(now: datetime, grace: timedelta = DEFAULT_GRACE) -> date:
    """The watermark a fold at ``now`` moves to: the UTC date of ``now - grace``."""
    return (now.astimezone(UTC) - grace).date()


def fold_latency(
    conn: psycopg.Connection[Any],
    *,
    now: datetime | None = None,
    grace: timedelta = DEFAULT_GRACE,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    hour_grace: timedelta = DEFAULT_HOUR_GRACE,
) -> dict[str, Any]:
    """Fold every day before the UTC date of ``now - grace`` not folded yet (autocommit connection,
    a transaction per chunk), then compact the hours closed ``hour_grace`` before ``now``
    (compact.compact_hours); the days with latencies and the latency rows folded, the tool_rollup,
    forward_rollup, session_rollup and user_cost_monthly rows written, the watermark reached (an ISO
    date, or '-infinity' before any fold), and the hours compacted with the rows that went and came."""
    if chunk_days < 1:
        raise ValueError(f"chunk_days: must be at least 1, got {chunk_days}")
    if grace < timedelta(0):
        raise ValueError(f"grace: must not be negative, got {grace}")
    if hour_grace < timedelta(0):  # before the fold, not after it
        raise ValueError(f"hour grace: must not be negative, got {hour_grace}")
    if not conn.autocommit:
        raise ValueError("conn: the fold commits a chunk at a time; pass an autocommit connection")
    now = now or datetime.now(UTC)
    target = fold_target(now, grace)
    params: dict[str, Any] = {"target": target, "days": chunk_days}
    days = rows = tool_rows = forward_rows = session_rows = month_rows = 0
    while conn.execute(DUE, params).fetchone() is not None:  # nothing due: no lock, no wait
        with conn.transaction():
            conn.execute(LOCK)
            span = conn.execute(CLEAR, params).fetchone()
            if span is None:  # another fold got there first
                break
            found = conn.execute(FOLD, {"since": span[0], "upto": span[1]}).fetchone()
            if found:
                days, rows = days + int(found[0]), rows + int(found[1])
                tool_rows, forward_rows = tool_rows + int(found[2]), forward_rows + int(found[3])
                session_rows += int(found[4])
    if conn.execute(MONTHS_DUE).fetchone() is not None:  # once, up to the watermark the chunks reached
        with conn.transaction():
            conn.execute(LOCK)
            conn.execute(MONTHS_CLEAR)
            month_rows = int((conn.execute(MONTHS).fetchone() or (0,))[0])
    row = conn.execute("SELECT folded_upto::text FROM latency_fold").fetchone()
    compacted = compact_hours(conn, LOCK, now=now, grace=hour_grace)
    return {
        "days": days,
        "rows": rows,
        "tool_rows": tool_rows,
        "forward_rows": forward_rows,
        "session_rows": session_rows,
        "month_rows": month_rows,
        "folded_upto": row[0] if row else None,
        **compacted,
    }
