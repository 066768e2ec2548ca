"""The summary and per model over the last N UTC hours (session_totals.py reads them).

``X_OF_HOURS`` sums session_hourly (schema.sql) over whole UTC hours ``[start_at, end_at)`` and says
in its first column, ``rollups_ready``, whether it counts every row; ``X_OF_HOURS_FROM_BASE`` is the
same read over session_metrics through its index on started_at, run only while a back-fill of the
sessions is due. Sync mismatches are kept per UTC date only: the summary of some hours counts those
of the UTC dates the hours touch (carried by SUMMARY_OF_HOURS whether or not the roll-up is ready, as
SUMMARY_FROM_ROLLUP carries those of its dates).
"""

SUMMARY_OF_HOURS = """
SELECT ready.rollups_ready, sessions.*, mismatches.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('sessions')
) AS ready
LEFT JOIN (
    SELECT COALESCE(sum(sessions), 0)::int8 AS total_sessions,
           COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
           COALESCE(sum(completion_tokens), 0) AS completion_tokens,
           COALESCE(sum(total_tokens), 0) AS total_tokens,
           COALESCE(sum(tool_call_count), 0) AS total_tool_calls,
           COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs,
           COALESCE(sum(total_compression_events), 0) AS total_compression_events,
           COALESCE(sum(total_tokens_saved), 0) AS total_tokens_saved,
           COALESCE(sum(sessions) FILTER (WHERE status = 'running' AND NOT reconciled), 0) AS active_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'completed' AND NOT reconciled), 0)
               AS completed_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'awaiting_response' AND NOT reconciled), 0)
               AS awaiting_response_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'error' AND NOT reconciled), 0) AS error_sessions,
           COALESCE(sum(sessions) FILTER (WHERE status = 'cancelled' AND NOT reconciled), 0)
               AS cancelled_sessions,
           COALESCE(sum(sessions) FILTER (WHERE reconciled), 0) AS reconciled_sessions
    FROM session_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
) AS sessions ON ready.rollups_ready
CROSS JOIN (
    SELECT COALESCE(sum(total), 0) AS total_sync_mismatches,
           COALESCE(jsonb_object_agg(reason, total), '{}') AS sync_mismatch_breakdown
    FROM (
        SELECT reason, sum(count) AS total
        FROM execute_sync_mismatch_metrics
        WHERE mismatch_date >= (%(start_at)s::timestamptz AT TIME ZONE 'UTC')::date
          AND mismatch_date <= ((%(end_at)s::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC')::date
        GROUP BY reason
    ) AS per_reason
) AS mismatches
"""

SUMMARY_OF_HOURS_FROM_BASE = """
SELECT count(*) AS total_sessions,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       COALESCE(sum(tool_call_count), 0) AS total_tool_calls,
       COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs,
       COALESCE(sum(total_compression_events), 0) AS total_compression_events,
       COALESCE(sum(total_tokens_saved), 0) AS total_tokens_saved,
       count(*) FILTER (WHERE status = 'running' AND reconciled_at IS NULL) AS active_sessions,
       count(*) FILTER (WHERE status = 'completed' AND reconciled_at IS NULL) AS completed_sessions,
       count(*) FILTER (WHERE status = 'awaiting_response' AND reconciled_at IS NULL)
           AS awaiting_response_sessions,
       count(*) FILTER (WHERE status = 'error' AND reconciled_at IS NULL) AS error_sessions,
       count(*) FILTER (WHERE status = 'cancelled' AND reconciled_at IS NULL) AS cancelled_sessions,
       count(*) FILTER (WHERE reconciled_at IS NOT NULL) AS reconciled_sessions
FROM session_metrics
WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
"""

BY_MODEL_OF_HOURS = """
SELECT ready.rollups_ready, answer.*
FROM (
    SELECT count(*) = 1 AS rollups_ready FROM rollup_backfill WHERE done AND entity IN ('sessions')
) AS ready
LEFT JOIN (
    SELECT model,
           sum(sessions)::int8 AS sessions,
           COALESCE(sum(sessions) FILTER (WHERE reconciled), 0)::int8 AS reconciled_sessions,
           sum(total_rounds) AS rounds,
           sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens,
           sum(total_tokens) AS total_tokens,
           sum(tool_call_count) AS tool_calls,
           sum(prompt_cached_tool_outputs) AS prompt_cached_tool_outputs
    FROM session_hourly
    WHERE hour >= %(start_at)s::timestamptz AND hour < %(end_at)s::timestamptz
    GROUP BY model
    HAVING sum(sessions) > 0
) AS answer ON ready.rollups_ready
ORDER BY total_tokens DESC, model COLLATE "C"
"""

BY_MODEL_OF_HOURS_FROM_BASE = """
SELECT model,
       count(*) AS sessions,
       count(*) FILTER (WHERE reconciled_at IS NOT NULL) AS reconciled_sessions,
       COALESCE(sum(total_rounds), 0) AS rounds,
       COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(sum(completion_tokens), 0) AS completion_tokens,
       COALESCE(sum(total_tokens), 0) AS total_tokens,
       COALESCE(sum(tool_call_count), 0) AS tool_calls,
       COALESCE(sum(prompt_cached_tool_outputs), 0) AS prompt_cached_tool_outputs
FROM session_metrics
WHERE started_at >= %(start_at)s::timestamptz AND started_at < %(end_at)s::timestamptz
GROUP BY model
ORDER BY sum(total_tokens) DESC, model COLLATE "C"
"""
