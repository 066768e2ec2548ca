"""Compacting the closed hours of latency_hourly (schema.sql: latency_hourly.raw), a step of the
fold: a read of the last hours then sends each closed hour's histograms as stored bytes, one row per
metric and name, whatever the number of workers that wrote them.

An hour is closed ``grace`` after it ends; the closed hours of the last COMPACTED_SPAN with a row
not compacted yet (``raw`` NULL: never compacted, or written since) are due. Under the fold's
exclusive advisory lock (the moves take it shared, so no apply adds to an hour while it is
rewritten), an hour per transaction (the applies wait tens of milliseconds at most: a day's hours
at once held the lock 0.2 s at the read bench's 1x with one worker, longer with more): each due
hour's rows go, and one row per metric and name takes their place, in slot 0, with the sum of their
counts and its raw form. A write into a compacted hour after that adds a row of its own slot, or
adds to the slot-0 row and sets its ``raw`` NULL: the reads pack such rows themselves, so they stay
exact, and the next fold compacts the hour again. Idempotent: nothing due, it takes no lock
(applies never wait on it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

#: Late events within this long after an hour ends still land in its rows as the apply wrote them.
#: The fold runs at minute 7 (worker/maintenance/cron.py): the hour before is compacted by then.
DEFAULT_HOUR_GRACE = timedelta(minutes=5)
#: How far back hours are compacted: the reads of hours go back 7 days (read/queries/_base.py:
#: MAX_HOURS); older hours are read only by the days not folded yet, packed by the read.
COMPACTED_SPAN = timedelta(days=8)

# The first hour in [since, before) with a row not compacted: the index's order, no lock.
DUE = """
SELECT min(hour) FROM latency_hourly
WHERE hour >= %(since)s::timestamptz AND hour < %(before)s::timestamptz AND raw IS NULL
"""

# The hours in [since, until) with a row not compacted: their rows go, one per metric and name comes,
# in slot 0 (a key whose counts sum to zero comes back as no row, as the fold's days).
COMPACT = """
WITH due AS (
    SELECT DISTINCT h.hour FROM latency_hourly AS h
    WHERE h.hour >= %(since)s::timestamptz AND h.hour < %(until)s::timestamptz AND h.raw IS NULL
), gone AS (
    DELETE FROM latency_hourly AS h USING due WHERE h.hour = due.hour
    RETURNING h.hour, h.metric, h.name, h.lo, h.counts
), buckets AS (
    SELECT g.hour, g.metric, g.name, g.lo + u.k::int - 1 AS bucket, sum(u.n)::int AS n
    FROM gone AS g, unnest(g.counts) WITH ORDINALITY AS u(n, k)
    WHERE u.n <> 0
    GROUP BY 1, 2, 3, 4
    HAVING sum(u.n) <> 0
), summed AS (
    SELECT b.hour, b.metric, b.name, min(b.bucket) AS lo,
           metrics_histogram(min(b.bucket), max(b.bucket), array_agg(b.bucket), array_agg(b.n)) AS counts
    FROM buckets AS b
    GROUP BY 1, 2, 3
), compacted AS (
    INSERT INTO latency_hourly (hour, metric, name, slot, lo, counts, raw)
    SELECT s.hour, s.metric, s.name, 0, s.lo, s.counts, metrics_histogram_raw(s.counts)
    FROM summed AS s
    ORDER BY 1, 2, 3
    RETURNING 1
)
SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM gone), (SELECT count(*) FROM compacted)
"""


def compact_before(now: datetime, grace: timedelta = DEFAULT_HOUR_GRACE) -> datetime:
    """The first hour not closed at ``now``: the UTC hour of ``now - grace``."""
    return (now.astimezone(UTC) - grace).replace(minute=0, second=0, microsecond=0)


def compact_hours(
    conn: psycopg.Connection[Any],
    lock: str,
    *,
    now: datetime | None = None,
    grace: timedelta = DEFAULT_HOUR_GRACE,
) -> dict[str, int]:
    """Compact the due hours (autocommit connection, a transaction per hour, each under
    ``lock``, the fold's); how many hours, and the rows that went and came."""
    if grace < timedelta(0):
        raise ValueError(f"hour grace: must not be negative, got {grace}")
    before = compact_before(now or datetime.now(UTC), grace)
    since = before - COMPACTED_SPAN
    hours = rows_in = rows_out = 0
    while since < before:
        found = conn.execute(DUE, {"since": since, "before": before}).fetchone()
        if found is None or found[0] is None:  # nothing due: no lock, no wait
            break
        since = found[0]
        until = since + timedelta(hours=1)
        with conn.transaction():
            conn.execute(lock)
            done = conn.execute(COMPACT, {"since": since, "until": until}).fetchone()
        if done:
            hours, rows_in, rows_out = hours + int(done[0]), rows_in + int(done[1]), rows_out + int(done[2])
        since = until
    return {"hours": hours, "hour_rows_in": rows_in, "hour_rows": rows_out}
