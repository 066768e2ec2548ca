"""Latency percentiles of any span: rounds per model, tool calls per tool, forwards per endpoint.

Three whole statements side by side: LATENCY_FROM_ROLLUP reads the daily histograms of whole UTC
dates (schema.sql: latency_daily, one dense array of bucket counts per day, metric, name and slot;
the days not folded into it yet, latency_fold, from latency_hourly),
LATENCY_OF_HOURS_FROM_ROLLUP the hourly ones of the last N hours (latency_hourly); each says in its
first column, ``rollups_ready``, whether they count every row. LATENCY_FROM_BASE computes the same
buckets from the base tables (with schema.sql's metrics_latency_bucket), run only while a back-fill
is due, each bucket a one-count array. All three send one row per name, its arrays packed (first
buckets, lengths, and the elements as int4[]'s binary form has them; the aggregates of a group
take its rows in one order, as PostgreSQL advances them together row by row), and the arrays of
closed hours the fold compacted and of the days it folded (schema.sql: latency_hourly.raw,
latency_daily.raw) apart, as stored (their elements
as 4-byte ints: no array_send, an int4send call per element, and half the bytes), summed by
_base.sum_packed in one numpy call, and the percentiles are read off the summed array
(histogram.percentiles_dense), so all give the same answer: the last 24 hours are 24 arrays per name
and slot (and a span of dates has the hours of the days not folded yet), and a row, a loader call
and a slice add per array cost more than the sum. A span is ``[start_at, end_at)``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from worker.engine import histogram
from worker.read.models import EndpointLatency, Latency, ModelLatency, Percentiles, ToolLatency
from worker.read.queries._base import (
    QueryError,
    Source,
    borrowed,
    date_span,
    hours_window,
    rollup_or_base,
    sum_packed,
)

LATENCY_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 3 AS rollups_ready FROM rollup_backfill
    WHERE done AND entity IN ('round_hourly', 'tool_latency', 'forward_latency')
) AS ready
LEFT JOIN (
    SELECT metric, name,
           array_agg(lo) FILTER (WHERE raw IS NULL) AS los,
           array_agg(cardinality(counts)) FILTER (WHERE raw IS NULL) AS sizes,
           string_agg(substring(array_send(counts) FROM 21), ''::bytea) FILTER (WHERE raw IS NULL) AS packed,
           array_agg(lo) FILTER (WHERE raw IS NOT NULL) AS raw_los,
           array_agg(cardinality(counts)) FILTER (WHERE raw IS NOT NULL) AS raw_sizes,
           string_agg(raw, ''::bytea) AS raw
    FROM (
        SELECT metric, name, lo, counts, raw
        FROM latency_daily
        WHERE day >= COALESCE((%(start_at)s::timestamptz AT TIME ZONE 'UTC')::date, '-infinity')
          AND day < LEAST(COALESCE((%(end_at)s::timestamptz AT TIME ZONE 'UTC')::date, 'infinity'),
                          (SELECT folded_upto FROM latency_fold))
        UNION ALL
        SELECT metric, name, lo, counts, raw
        FROM latency_hourly
        WHERE hour >= GREATEST(COALESCE(%(start_at)s::timestamptz, '-infinity'),
                               (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC')
          AND hour < COALESCE(%(end_at)s::timestamptz, 'infinity')
    ) AS h
    GROUP BY metric, name
) AS answer ON ready.rollups_ready
"""

LATENCY_OF_HOURS_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 3 AS rollups_ready FROM rollup_backfill
    WHERE done AND entity IN ('round_hourly', 'tool_latency', 'forward_latency')
) AS ready
LEFT JOIN (
    SELECT metric, name,
           array_agg(lo) FILTER (WHERE raw IS NULL) AS los,
           array_agg(cardinality(counts)) FILTER (WHERE raw IS NULL) AS sizes,
           string_agg(substring(array_send(counts) FROM 21), ''::bytea) FILTER (WHERE raw IS NULL) AS packed,
           array_agg(lo) FILTER (WHERE raw IS NOT NULL) AS raw_los,
           array_agg(cardinality(counts)) FILTER (WHERE raw IS NOT NULL) AS raw_sizes,
           string_agg(raw, ''::bytea) AS raw
    FROM latency_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
    GROUP BY metric, name
) AS answer ON ready.rollups_ready
"""

LATENCY_FROM_BASE = """
SELECT metric, name, array_agg(bucket) AS los, array_agg(1) AS sizes,
       string_agg(substring(array_send(ARRAY[n]) FROM 21), ''::bytea) AS packed,
       NULL::int[] AS raw_los, NULL::int[] AS raw_sizes, NULL::bytea AS raw
FROM (
    SELECT metric, name, bucket, count(*)::int AS n
    FROM (
        SELECT 'round_duration' AS metric, model AS name,
               metrics_latency_bucket(EXTRACT(EPOCH FROM completed_at - started_at)::float8 * 1000) AS bucket
        FROM round_metrics
        WHERE started_at >= COALESCE(%(start_at)s::timestamptz, '-infinity')
          AND started_at < COALESCE(%(end_at)s::timestamptz, 'infinity')
          AND model IS NOT NULL AND completed_at IS NOT NULL AND completion_version IS DISTINCT FROM ''
        UNION ALL
        SELECT 'round_ttft', model, metrics_latency_bucket(time_to_first_token_ms)
        FROM round_metrics
        WHERE started_at >= COALESCE(%(start_at)s::timestamptz, '-infinity')
          AND started_at < COALESCE(%(end_at)s::timestamptz, 'infinity')
          AND model IS NOT NULL AND time_to_first_token_ms IS NOT NULL
        UNION ALL
        SELECT 'tool_duration', tool_name,
               metrics_latency_bucket(EXTRACT(EPOCH FROM completed_at - started_at)::float8 * 1000)
        FROM tool_call_metrics
        WHERE started_at >= COALESCE(%(start_at)s::timestamptz, '-infinity')
          AND started_at < COALESCE(%(end_at)s::timestamptz, 'infinity')
          AND tool_name IS NOT NULL AND completed_at IS NOT NULL
        UNION ALL
        SELECT 'forward_duration', endpoint,
               metrics_latency_bucket(EXTRACT(EPOCH FROM completed_at - started_at)::float8 * 1000)
        FROM forward_request_metrics
        WHERE started_at >= COALESCE(%(start_at)s::timestamptz, '-infinity')
          AND started_at < COALESCE(%(end_at)s::timestamptz, 'infinity')
          AND endpoint IS NOT NULL AND completed_at IS NOT NULL AND completion_version IS DISTINCT FROM ''
          AND right(COALESCE(completion_version, ''), 11) <> '|reconciled'
        UNION ALL
        SELECT 'forward_ttft', endpoint, metrics_latency_bucket(time_to_first_token_ms)
        FROM forward_request_metrics
        WHERE started_at >= COALESCE(%(start_at)s::timestamptz, '-infinity')
          AND started_at < COALESCE(%(end_at)s::timestamptz, 'infinity')
          AND endpoint IS NOT NULL AND time_to_first_token_ms IS NOT NULL
    ) AS x
    GROUP BY metric, name, bucket
) AS b
GROUP BY metric, name
"""


def percentiles_of(first: int, total: NDArray[np.int64]) -> Percentiles:
    """The four percentiles of summed bucket counts (histogram.sum_dense's ``(first, total)``), with
    how many durations they are over."""
    p = histogram.percentiles_dense(first, total, histogram.QUANTILES)
    return Percentiles(count=int(total.sum()), p50=p[0.5], p90=p[0.9], p95=p[0.95], p99=p[0.99])


def latency(
    source: Source,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    hours: int | None = None,
    now: datetime | None = None,
) -> Latency:
    """Per model, tool and endpoint: percentiles of what started in the inclusive UTC dates, or,
    with ``hours`` (1..168, instead of dates), in the last that many UTC hours (the current one so
    far included; ``now`` for tests). Most-measured names first."""
    if hours is not None and (start_date is not None or end_date is not None):
        raise QueryError("hours and dates: give the last N hours or a date range, not both", param="hours")
    start_at, end_at = hours_window(hours, now) if hours is not None else date_span(start_date, end_date)
    params = {"start_at": start_at, "end_at": end_at}
    from_rollup = LATENCY_OF_HOURS_FROM_ROLLUP if hours is not None else LATENCY_FROM_ROLLUP
    with borrowed(source) as conn:
        rows = rollup_or_base(
            conn, from_rollup, LATENCY_FROM_BASE, params, "metric", binary=True, counts_as_numpy=True
        )
    counts: dict[str, dict[str, Dense]] = defaultdict(dict)
    for row in rows:  # one row per name, its arrays packed
        c = sum_packed(row["los"], row["sizes"], row["packed"], row["raw_los"], row["raw_sizes"], row["raw"])
        if c[1].any():
            counts[row["metric"]][row["name"]] = c
    return Latency(
        start=start_at,
        end=end_at,
        models=[
            ModelLatency(model=name, duration=percentiles_of(*d), time_to_first_token=percentiles_of(*t))
            for name, d, t in _pairs(counts.get("round_duration", {}), counts.get("round_ttft", {}))
        ],
        tools=[
            ToolLatency(tool_name=name, duration=percentiles_of(*d))
            for name, d, _ in _pairs(counts.get("tool_duration", {}), {})
        ],
        endpoints=[
            EndpointLatency(
                endpoint=name, duration=percentiles_of(*d), time_to_first_token=percentiles_of(*t)
            )
            for name, d, t in _pairs(counts.get("forward_duration", {}), counts.get("forward_ttft", {}))
        ],
    )


Dense: TypeAlias = "tuple[int, NDArray[np.int64]]"
_EMPTY: Dense = (0, np.zeros(0, dtype=np.int64))


def _pairs(durations: dict[str, Dense], ttfts: dict[str, Dense]) -> list[tuple[str, Dense, Dense]]:
    """Every name measured in either, most durations first (then most TTFTs, then the name)."""
    names = set(durations) | set(ttfts)
    out = [(n, durations.get(n, _EMPTY), ttfts.get(n, _EMPTY)) for n in names]
    out.sort(key=lambda x: (-int(x[1][1].sum()), -int(x[2][1].sum()), x[0].encode()))
    return out
