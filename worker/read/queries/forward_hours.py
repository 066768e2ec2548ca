"""The forward summary and per endpoint over the last N UTC hours (forward_totals.py reads them).

``X_OF_HOURS`` sums forward_hourly (schema.sql) over whole UTC hours ``[start_at, end_at)`` and says
in its first column, ``rollups_ready``, whether it counts every row; ``X_OF_HOURS_FROM_BASE`` is the
same read over forward_request_metrics through its index on started_at, run only while a back-fill
of the forwards is due.
"""

FORWARD_SUMMARY_OF_HOURS = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('forwards')
) AS ready
LEFT JOIN (
    SELECT COALESCE(sum(requests), 0)::int8 AS requests,
           COALESCE(sum(successful), 0)::int8 AS successful,
           COALESCE(sum(failed), 0)::int8 AS failed,
           COALESCE(sum(timed_out), 0)::int8 AS timed_out,
           COALESCE(sum(pending), 0)::int8 AS pending,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           sum(duration_us) / 1000000.0 AS completed_seconds,
           COALESCE(sum(completed), 0)::int8 AS completed
    FROM forward_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
      AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
      AND (%(model)s::text IS NULL OR model = %(model)s::text)
) AS answer ON ready.rollups_ready
"""

FORWARD_BY_ENDPOINT_OF_HOURS = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('forwards')
) AS ready
LEFT JOIN (
    SELECT endpoint,
           COALESCE(sum(requests), 0)::int8 AS requests,
           COALESCE(sum(successful), 0)::int8 AS successful,
           COALESCE(sum(failed), 0)::int8 AS failed,
           COALESCE(sum(timed_out), 0)::int8 AS timed_out,
           COALESCE(sum(pending), 0)::int8 AS pending,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           sum(duration_us) / 1000000.0 AS completed_seconds,
           COALESCE(sum(completed), 0)::int8 AS completed
    FROM forward_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
      AND (%(model)s::text IS NULL OR model = %(model)s::text)
    GROUP BY endpoint
    HAVING sum(requests) > 0
) AS answer ON ready.rollups_ready
ORDER BY requests DESC, endpoint COLLATE "C"
"""

FORWARD_SUMMARY_OF_HOURS_FROM_BASE = """
SELECT count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS successful,
       count(*) FILTER (WHERE status = 'error') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       EXTRACT(EPOCH FROM sum(completed_at - started_at)) AS completed_seconds,
       count(completed_at) AS completed
FROM forward_request_metrics
WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
  AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
"""

FORWARD_BY_ENDPOINT_OF_HOURS_FROM_BASE = """
SELECT endpoint,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'success') AS successful,
       count(*) FILTER (WHERE status = 'error') AS failed,
       count(*) FILTER (WHERE status = 'timeout') AS timed_out,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       EXTRACT(EPOCH FROM sum(completed_at - started_at)) AS completed_seconds,
       count(completed_at) AS completed
FROM forward_request_metrics
WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
  AND (%(model)s::text IS NULL OR model = %(model)s::text)
GROUP BY endpoint
ORDER BY count(*) DESC, endpoint COLLATE "C"
"""
