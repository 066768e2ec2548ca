"""The hourly series of rounds over the last N UTC hours: rounds, errors, tokens, cost and duration.

Two whole statements side by side: SERIES_FROM_ROLLUP reads the hourly roll-ups (schema.sql:
round_hourly for the counts and cost, latency_hourly's round_duration histograms for the percentiles: each
hour's dense arrays packed into one value, summed here by _base.sum_packed) and says
in its first column, ``rollups_ready``, whether they count every row; SERIES_FROM_BASE is the same
read over round_metrics, run only while a back-fill is due. Every hour of the window is a row
(generate_series), zeros where nothing started; an hour is the one a round's ``started_at`` is in.
"""

from __future__ import annotations

from datetime import datetime

from worker.read.models import HourlyPoint, HourlySeries, TokenUsage
from worker.read.queries._base import (
    DEFAULT_HOURS,
    Source,
    borrowed,
    check_text,
    hours_window,
    rollup_or_base,
    sum_packed,
)
from worker.read.queries.percentiles import percentiles_of

SERIES_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('round_hourly')
) AS ready
LEFT JOIN (
    SELECT h.hour, COALESCE(c.rounds, 0) AS rounds, COALESCE(c.errors, 0) AS errors,
           COALESCE(c.prompt_tokens, 0) AS prompt_tokens,
           COALESCE(c.completion_tokens, 0) AS completion_tokens,
           COALESCE(c.total_tokens, 0) AS total_tokens, COALESCE(c.cost_usd, 0) AS cost_usd,
           COALESCE(c.unpriced, 0) AS unpriced, l.los, l.sizes, l.packed
    FROM generate_series(%(start_at)s::timestamptz, %(end_at)s::timestamptz - interval '1 hour',
                         interval '1 hour') AS h(hour)
    LEFT JOIN (
        SELECT hour, sum(rounds)::int8 AS rounds, sum(errors)::int8 AS errors,
               sum(prompt_tokens)::int8 AS prompt_tokens, sum(completion_tokens)::int8 AS completion_tokens,
               sum(total_tokens)::int8 AS total_tokens, sum(cost_usd) AS cost_usd,
               sum(unpriced)::int8 AS unpriced
        FROM round_hourly
        WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
          AND (%(model)s::text IS NULL OR model = %(model)s::text)
        GROUP BY hour
    ) AS c ON c.hour = h.hour
    LEFT JOIN (
        SELECT hour, array_agg(lo) AS los, array_agg(cardinality(counts)) AS sizes,
               string_agg(substring(array_send(counts) FROM 21), ''::bytea) AS packed
        FROM latency_hourly
        WHERE metric = 'round_duration'
          AND hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
          AND (%(model)s::text IS NULL OR name = %(model)s::text)
        GROUP BY hour
    ) AS l ON l.hour = h.hour
) AS answer ON ready.rollups_ready
ORDER BY answer.hour
"""

SERIES_FROM_BASE = """
SELECT h.hour, COALESCE(c.rounds, 0) AS rounds, COALESCE(c.errors, 0) AS errors,
       COALESCE(c.prompt_tokens, 0) AS prompt_tokens, COALESCE(c.completion_tokens, 0) AS completion_tokens,
       COALESCE(c.total_tokens, 0) AS total_tokens, COALESCE(c.cost_usd, 0) AS cost_usd,
       COALESCE(c.unpriced, 0) AS unpriced, l.los, l.sizes, l.packed
FROM generate_series(%(start_at)s::timestamptz, %(end_at)s::timestamptz - interval '1 hour',
                     interval '1 hour') AS h(hour)
LEFT JOIN (
    SELECT metrics_utc_hour(started_at) AS hour, count(*) AS rounds,
           count(*) FILTER (WHERE status = 'error') AS errors, sum(prompt_tokens)::int8 AS prompt_tokens,
           sum(completion_tokens)::int8 AS completion_tokens, sum(total_tokens)::int8 AS total_tokens,
           COALESCE(sum(cost_usd), 0) AS cost_usd, count(*) FILTER (WHERE unpriced) AS unpriced
    FROM round_metrics
    WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
      AND model IS NOT NULL AND (%(model)s::text IS NULL OR model = %(model)s::text)
    GROUP BY 1
) AS c ON c.hour = h.hour
LEFT JOIN (
    SELECT hour, array_agg(bucket) AS los, array_agg(1) AS sizes,
           string_agg(substring(array_send(ARRAY[n::int]) FROM 21), ''::bytea) AS packed
    FROM (
        SELECT metrics_utc_hour(started_at) AS hour,
               metrics_latency_bucket(EXTRACT(EPOCH FROM completed_at - started_at)::float8 * 1000) AS bucket,
               count(*) AS n
        FROM round_metrics
        WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
          AND model IS NOT NULL AND (%(model)s::text IS NULL OR model = %(model)s::text)
          AND completed_at IS NOT NULL AND completion_version IS DISTINCT FROM ''
        GROUP BY 1, 2
    ) AS b
    GROUP BY hour
) AS l ON l.hour = h.hour
ORDER BY h.hour
"""


def hourly_series(
    source: Source, *, hours: int = DEFAULT_HOURS, model: str | None = None, now: datetime | None = None
) -> HourlySeries:
    """Per UTC hour of the last ``hours`` (1..168; the current hour so far is the last): rounds
    started, errors, tokens, cost (unpriced rounds counted apart) and the rounds' duration
    percentiles; only ``model``'s if given."""
    check_text("model", model)
    start_at, end_at = hours_window(hours, now)
    params = {"start_at": start_at, "end_at": end_at, "model": model}
    with borrowed(source) as conn:
        rows = rollup_or_base(
            conn, SERIES_FROM_ROLLUP, SERIES_FROM_BASE, params, "hour", binary=True, counts_as_numpy=True
        )
    points = [
        HourlyPoint(
            hour=row["hour"],
            rounds=row["rounds"],
            errors=row["errors"],
            tokens=TokenUsage(
                prompt_tokens=row["prompt_tokens"],
                completion_tokens=row["completion_tokens"],
                total_tokens=row["total_tokens"],
            ),
            cost_usd=row["cost_usd"],
            unpriced_rounds=row["unpriced"],
            duration=percentiles_of(*sum_packed(row["los"], row["sizes"], row["packed"])),
        )
        for row in rows
    ]
    return HourlySeries(start=start_at, end=end_at, hours=hours, model=model, points=points)
