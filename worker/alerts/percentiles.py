"""Percentiles of a window: round latency and time to first token, from the rows or the histograms.

Under a day they are PostgreSQL's ``percentile_disc`` over the rounds started in the window
(through the ``started_at`` indexes). Over days they sum the daily latency histograms
(``latency_daily``, schema.sql: a dense array of bucket counts per day, model and slot; the days
not folded into it yet, ``latency_fold``, from ``latency_hourly``) into bucket counts per label
and read the percentile off them (worker/engine/histogram.py): the representative of the bucket
holding ``percentile_disc``'s answer, within 1.083% of it; the twin over the rounds computes the
same buckets while the back-fill of ``round_hourly`` is due. All count the same rounds: completed,
and not closed by reconcile (whose completion is a guess); a completion before its start counts as
0 ms.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from worker.engine import histogram

ROUND_LATENCY = """
SELECT CASE %(group_by)s::text
           WHEN 'model' THEN COALESCE(model, '') WHEN 'provider' THEN COALESCE(provider, '') ELSE ''
       END AS label,
       percentile_disc(%(quantile)s::float8) WITHIN GROUP (
           ORDER BY GREATEST(EXTRACT(EPOCH FROM completed_at - started_at)::float8 * 1000, 0)) AS value,
       count(*) AS samples
FROM round_metrics
WHERE started_at >= %(since)s
  AND completed_at IS NOT NULL AND completion_version IS DISTINCT FROM ''
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

ROUND_LATENCY_FROM_ROLLUP = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity = 'round_hourly'
) AS ready
LEFT JOIN (
    SELECT CASE %(group_by)s::text WHEN 'model' THEN name ELSE '' END AS label, lo, counts
    FROM latency_daily
    WHERE metric = %(metric)s AND day >= %(first_day)s::date AND day < (SELECT folded_upto FROM latency_fold)
      AND (%(model)s::text IS NULL OR name = %(model)s)
    UNION ALL
    SELECT CASE %(group_by)s::text WHEN 'model' THEN name ELSE '' END, lo, counts
    FROM latency_hourly
    WHERE metric = %(metric)s
      AND hour >= GREATEST(%(first_day)s::date, (SELECT folded_upto FROM latency_fold))::timestamp
                  AT TIME ZONE 'UTC'
      AND (%(model)s::text IS NULL OR name = %(model)s)
) AS answer ON ready.rollups_ready
"""

ROUND_LATENCY_BUCKETS = """
SELECT CASE %(group_by)s::text WHEN 'model' THEN model ELSE '' END AS label,
       metrics_latency_bucket(EXTRACT(EPOCH FROM completed_at - started_at)::float8 * 1000) AS lo,
       ARRAY[count(*)::int] AS counts
FROM round_metrics
WHERE started_at >= %(since)s
  AND model IS NOT NULL AND completed_at IS NOT NULL AND completion_version IS DISTINCT FROM ''
  AND (%(model)s::text IS NULL OR model = %(model)s)
GROUP BY 1, 2
"""

FIRST_TOKEN_BUCKETS = """
SELECT CASE %(group_by)s::text WHEN 'model' THEN model ELSE '' END AS label,
       metrics_latency_bucket(time_to_first_token_ms) AS lo,
       ARRAY[count(*)::int] AS counts
FROM round_metrics
WHERE started_at >= %(since)s
  AND model IS NOT NULL AND time_to_first_token_ms IS NOT NULL
  AND (%(model)s::text IS NULL OR model = %(model)s)
GROUP BY 1, 2
"""

#: The latency_daily metric of each percentile kind.
METRICS: Mapping[str, str] = {
    "round_latency_p95": "round_duration",
    "round_latency_p99": "round_duration",
    "time_to_first_token_p95": "round_ttft",
}


def from_buckets(rows: Iterable[Mapping[str, Any]], q: float) -> dict[str, tuple[float | None, int]]:
    """``label -> (the q percentile, how many values)`` from rows of ``label`` and a dense histogram
    (``lo``, ``counts``: ``counts[k]`` values in bucket ``lo + k``); labels counting nothing left out."""
    arrays: dict[str, list[tuple[int, list[int]]]] = defaultdict(list)
    for row in rows:
        arrays[row["label"]].append((row["lo"], row["counts"]))
    out: dict[str, tuple[float | None, int]] = {}
    for label, histograms in arrays.items():
        if c := histogram.merge_dense(histograms):
            out[label] = (histogram.percentiles(c, (q,))[q], sum(c.values()))
    return out
