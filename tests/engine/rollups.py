"""Checks that the roll-ups are what the base tables say: bucket for bucket, and read for read.

``rollup_buckets`` sums a roll-up's slots; ``base_buckets`` computes the same buckets from the
base tables with a GROUP BY (what a recompute would write). ``reads_both_ways`` answers every
aggregate read twice, from the roll-ups and, with the roll-ups marked incomplete inside a
transaction that is rolled back, from the base tables the seed's way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from worker.engine.histogram import RELATIVE_ERROR
from worker.read import queries
from worker.read.models import Latency, Percentiles

_ROLLUPS = {
    "session_rollup": (
        "day, model, status, reconciled",
        "sessions, total_rounds, prompt_tokens, completion_tokens, total_tokens, tool_call_count, "
        "prompt_cached_tool_outputs, total_compression_events, total_tokens_saved",
    ),
    "session_hourly": (
        "hour, model, status, reconciled",
        "sessions, total_rounds, prompt_tokens, completion_tokens, total_tokens, tool_call_count, "
        "prompt_cached_tool_outputs, total_compression_events, total_tokens_saved",
    ),
    "tool_rollup": ("day, tool_name", "calls, succeeded, failed"),
    "tool_hourly": ("hour, tool_name", "calls, succeeded, failed"),
    "forward_rollup": (
        "day, endpoint, model",
        "requests, successful, failed, timed_out, pending, prompt_tokens, completion_tokens, "
        "total_tokens, completed, "
        "duration_us, cost_usd, priced, unpriced",
    ),
    "forward_hourly": (
        "hour, endpoint, model",
        "requests, successful, failed, timed_out, pending, prompt_tokens, completion_tokens, "
        "total_tokens, completed, "
        "duration_us, cost_usd, priced, unpriced",
    ),
    "round_cost_rollup": ("day, model, provider", "priced, unpriced, cost_usd"),
    "user_cost_rollup": ("day, user_id", "cost_usd, unpriced_rounds"),
    "user_model_cost_rollup": ("day, user_id, model", "cost_usd, unpriced_rounds"),
    "user_cost_monthly": ("month, user_id, model", "cost_usd, unpriced_rounds"),
    "round_hourly": (
        "hour, model",
        "rounds, errors, prompt_tokens, completion_tokens, total_tokens, cost_usd, unpriced, priced",
    ),
    "latency_hourly": ("hour, metric, name, bucket", "n"),
    "latency_daily": ("day, metric, name, bucket", "n"),
}

# The histogram roll-ups keep a dense array per key (schema.sql): read as one row per bucket.
_TABLES = {
    "latency_hourly": "(SELECT hour, metric, name, lo + k::int - 1 AS bucket, n"
    " FROM latency_hourly, unnest(counts) WITH ORDINALITY AS u(n, k)) AS t",
    # the days before the watermark from latency_daily, the later ones from their hours (schema.sql:
    # latency_fold), as the readers take them
    # the same for the tool calls: tool_rollup's days before the watermark, tool_hourly's after
    # (and for the sessions and forwards)
    "session_rollup": "(SELECT day, model, status, reconciled, sessions, total_rounds, prompt_tokens,"
    " completion_tokens, total_tokens, tool_call_count, prompt_cached_tool_outputs, total_compression_events,"
    " total_tokens_saved FROM session_rollup WHERE day < (SELECT folded_upto FROM latency_fold)"
    " UNION ALL SELECT (hour AT TIME ZONE 'UTC')::date, model, status, reconciled, sessions, total_rounds,"
    " prompt_tokens, completion_tokens, total_tokens, tool_call_count, prompt_cached_tool_outputs,"
    " total_compression_events, total_tokens_saved FROM session_hourly"
    " WHERE hour >= (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC') AS t",
    "tool_rollup": "(SELECT day, tool_name, calls, succeeded, failed FROM tool_rollup"
    " WHERE day < (SELECT folded_upto FROM latency_fold)"
    " UNION ALL SELECT (hour AT TIME ZONE 'UTC')::date, tool_name, calls, succeeded, failed FROM tool_hourly"
    " WHERE hour >= (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC') AS t",
    "forward_rollup": "(SELECT * FROM forward_rollup WHERE day < (SELECT folded_upto FROM latency_fold)"
    " UNION ALL SELECT (hour AT TIME ZONE 'UTC')::date, endpoint, model, slot, requests, successful, failed,"
    " timed_out, pending, prompt_tokens, completion_tokens, total_tokens, completed, duration_us, cost_usd,"
    " priced, unpriced FROM forward_hourly"
    " WHERE hour >= (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC') AS t",
    "latency_daily": "(SELECT day, metric, name, lo + k::int - 1 AS bucket, n"
    " FROM latency_daily, unnest(counts) WITH ORDINALITY AS u(n, k)"
    " WHERE day < (SELECT folded_upto FROM latency_fold)"
    " UNION ALL SELECT (hour AT TIME ZONE 'UTC')::date, metric, name, lo + k::int - 1, n"
    " FROM latency_hourly, unnest(counts) WITH ORDINALITY AS u(n, k)"
    " WHERE hour >= (SELECT folded_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC') AS t",
}

# A duration in ms as the latency triggers take it (schema.sql: latency_hourly).
_MS = "EXTRACT(EPOCH FROM completed_at - started_at)::float8 * 1000"

# Every latency the histograms count, with its row's start: the hourly and the daily roll-ups group
# the same rows by hour and by UTC day.
_LATENCIES = f"""
        SELECT started_at, 'round_duration' AS metric, model AS name, metrics_latency_bucket({_MS}) AS b
        FROM round_metrics WHERE started_at IS NOT NULL AND model IS NOT NULL AND completed_at IS NOT NULL
          AND completion_version IS DISTINCT FROM ''
        UNION ALL
        SELECT started_at, 'round_ttft', model, metrics_latency_bucket(time_to_first_token_ms)
        FROM round_metrics WHERE started_at IS NOT NULL AND model IS NOT NULL
          AND time_to_first_token_ms IS NOT NULL
        UNION ALL
        SELECT started_at, 'tool_duration', tool_name, metrics_latency_bucket({_MS})
        FROM tool_call_metrics WHERE started_at IS NOT NULL AND tool_name IS NOT NULL
          AND completed_at IS NOT NULL
        UNION ALL
        SELECT started_at, 'forward_duration', endpoint, metrics_latency_bucket({_MS})
        FROM forward_request_metrics WHERE started_at IS NOT NULL AND endpoint IS NOT NULL
          AND completed_at IS NOT NULL AND completion_version IS DISTINCT FROM ''
          AND right(COALESCE(completion_version, ''), 11) <> '|reconciled'
        UNION ALL
        SELECT started_at, 'forward_ttft', endpoint, metrics_latency_bucket(time_to_first_token_ms)
        FROM forward_request_metrics WHERE started_at IS NOT NULL AND endpoint IS NOT NULL
          AND time_to_first_token_ms IS NOT NULL"""

_BASE = {
    "session_rollup": """
        SELECT (started_at AT TIME ZONE 'UTC')::date, model, status, reconciled_at IS NOT NULL, count(*),
               sum(total_rounds), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
               sum(tool_call_count), sum(prompt_cached_tool_outputs), sum(total_compression_events),
               sum(total_tokens_saved)
        FROM session_metrics WHERE started_at IS NOT NULL GROUP BY 1, 2, 3, 4""",
    "session_hourly": """
        SELECT metrics_utc_hour(started_at), model, status, reconciled_at IS NOT NULL, count(*),
               sum(total_rounds), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
               sum(tool_call_count), sum(prompt_cached_tool_outputs), sum(total_compression_events),
               sum(total_tokens_saved)
        FROM session_metrics WHERE started_at IS NOT NULL GROUP BY 1, 2, 3, 4""",
    "tool_rollup": """
        SELECT (started_at AT TIME ZONE 'UTC')::date, tool_name, count(*),
               count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success)
        FROM tool_call_metrics WHERE started_at IS NOT NULL AND tool_name IS NOT NULL GROUP BY 1, 2""",
    "tool_hourly": """
        SELECT metrics_utc_hour(started_at), tool_name, count(*),
               count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success)
        FROM tool_call_metrics WHERE started_at IS NOT NULL AND tool_name IS NOT NULL GROUP BY 1, 2""",
    "forward_rollup": """
        SELECT (started_at AT TIME ZONE 'UTC')::date, endpoint, model, count(*),
               count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'error'),
               count(*) FILTER (WHERE status = 'timeout'), count(*) FILTER (WHERE status = 'pending'),
               COALESCE(sum(prompt_tokens), 0), COALESCE(sum(completion_tokens), 0),
               COALESCE(sum(total_tokens), 0), count(completed_at),
               COALESCE(sum((EXTRACT(EPOCH FROM completed_at - started_at) * 1000000)::int8), 0),
               COALESCE(sum(cost_usd), 0), count(cost_usd), count(*) FILTER (WHERE unpriced)
        FROM forward_request_metrics WHERE started_at IS NOT NULL GROUP BY 1, 2, 3""",
    "forward_hourly": """
        SELECT metrics_utc_hour(started_at), endpoint, model, count(*),
               count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'error'),
               count(*) FILTER (WHERE status = 'timeout'), count(*) FILTER (WHERE status = 'pending'),
               COALESCE(sum(prompt_tokens), 0), COALESCE(sum(completion_tokens), 0),
               COALESCE(sum(total_tokens), 0), count(completed_at),
               COALESCE(sum((EXTRACT(EPOCH FROM completed_at - started_at) * 1000000)::int8), 0),
               COALESCE(sum(cost_usd), 0), count(cost_usd), count(*) FILTER (WHERE unpriced)
        FROM forward_request_metrics WHERE started_at IS NOT NULL GROUP BY 1, 2, 3""",
    "round_cost_rollup": """
        SELECT (started_at AT TIME ZONE 'UTC')::date, model, COALESCE(provider, ''), count(cost_usd),
               count(*) FILTER (WHERE unpriced), COALESCE(sum(cost_usd), 0)
        FROM round_metrics
        WHERE started_at IS NOT NULL AND model IS NOT NULL AND (cost_usd IS NOT NULL OR unpriced)
        GROUP BY 1, 2, 3""",
    "user_cost_rollup": """
        SELECT (started_at AT TIME ZONE 'UTC')::date, user_id, sum(cost_usd), sum(unpriced_rounds)
        FROM session_metrics WHERE started_at IS NOT NULL AND user_id IS NOT NULL GROUP BY 1, 2
        HAVING sum(cost_usd) <> 0 OR sum(unpriced_rounds) <> 0""",
    "user_model_cost_rollup": """
        SELECT (started_at AT TIME ZONE 'UTC')::date, user_id, model, sum(cost_usd), sum(unpriced_rounds)
        FROM session_metrics WHERE started_at IS NOT NULL AND user_id IS NOT NULL GROUP BY 1, 2, 3
        HAVING sum(cost_usd) <> 0 OR sum(unpriced_rounds) <> 0""",
    # the sessions of the days before its watermark (schema.sql: latency_fold), by month
    "user_cost_monthly": """
        SELECT date_trunc('month', started_at AT TIME ZONE 'UTC')::date, user_id, model, sum(cost_usd),
               sum(unpriced_rounds)
        FROM session_metrics
        WHERE started_at < (SELECT months_upto FROM latency_fold)::timestamp AT TIME ZONE 'UTC'
          AND user_id IS NOT NULL
        GROUP BY 1, 2, 3
        HAVING sum(cost_usd) <> 0 OR sum(unpriced_rounds) <> 0""",
    "round_hourly": """
        SELECT metrics_utc_hour(started_at), model, count(*), count(*) FILTER (WHERE status = 'error'),
               sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), COALESCE(sum(cost_usd), 0),
               count(*) FILTER (WHERE unpriced), count(cost_usd)
        FROM round_metrics WHERE started_at IS NOT NULL AND model IS NOT NULL GROUP BY 1, 2""",
    "latency_hourly": f"""
        SELECT metrics_utc_hour(started_at), metric, name, b, count(*) FROM ({_LATENCIES}) AS x
        GROUP BY 1, 2, 3, 4""",
    "latency_daily": f"""
        SELECT (started_at AT TIME ZONE 'UTC')::date, metric, name, b, count(*) FROM ({_LATENCIES}) AS x
        GROUP BY 1, 2, 3, 4""",
}


def rollup_buckets(conn: psycopg.Connection[Any]) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """Every roll-up's buckets (slots summed), leaving out the ones that are all zero."""
    out = {}
    for table, (keys, values) in _ROLLUPS.items():
        n = keys.count(",") + 1
        sums = ", ".join(f"sum({v.strip()})" for v in values.split(","))
        rows = conn.execute(
            f"SELECT {keys}, {sums} FROM {_TABLES.get(table, table)} GROUP BY {keys}"
        ).fetchall()
        out[table] = {
            tuple(r[:n]): tuple(_exact(v) for v in r[n:]) for r in rows if any(v != 0 for v in r[n:])
        }
    return out


def base_buckets(conn: psycopg.Connection[Any]) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """The same buckets computed from the base tables."""
    out = {}
    for table, (keys, _) in _ROLLUPS.items():
        n = keys.count(",") + 1
        rows = conn.execute(_BASE[table]).fetchall()
        out[table] = {tuple(r[:n]): tuple(_exact(v) for v in r[n:]) for r in rows}
    return out


def assert_rollups_match(conn: psycopg.Connection[Any]) -> None:
    assert rollup_buckets(conn) == base_buckets(conn)


def _reads(conn: psycopg.Connection[Any], days: list[date]) -> list[Any]:
    out: list[Any] = [
        queries.summary(conn),
        queries.by_model(conn),
        queries.forward_summary(conn),
        queries.forward_by_endpoint(conn),
        queries.tool_metrics(conn),
        queries.latency(conn),
    ]
    for day in days:  # the last hours up to half past midnight, UTC: two dates' hours
        now = datetime.combine(day, time(0, 30), UTC)
        out += [queries.hourly_series(conn, hours=h, now=now) for h in (1, 6, 24)]
        out += [queries.latency(conn, hours=h, now=now) for h in (1, 24)]
        # the cost of the last hours: from midnight's and from an hour within the day (two dates' hours)
        for at in (now, now + timedelta(hours=13)):
            out += [queries.cost(conn, hours=h, now=at) for h in (1, 6, 24, 48)]
            out += [queries.tool_metrics(conn, hours=h, now=at) for h in (1, 6, 24, 48)]
            out += [queries.summary(conn, hours=h, now=at) for h in (1, 6, 24, 48)]
            out += [queries.by_model(conn, hours=h, now=at) for h in (1, 6, 24, 48)]
    for first, last in zip(days, days[1:] + days[-1:], strict=True):
        window = {"start_date": first, "end_date": last}
        span = (last - first).days + 1
        out += [queries.summary(conn, **window), queries.by_model(conn, **window)]
        out += [queries.forward_summary(conn, **window), queries.forward_by_endpoint(conn, **window)]
        out += [queries.tool_metrics(conn, **window), queries.latency(conn, **window)]
        out += [queries.daily_metrics(conn, days=span, end_date=last)]
        out += [queries.forward_daily_metrics(conn, days=span, end_date=last)]
        out += [queries.cost(conn, **window)]
    models = conn.execute("SELECT DISTINCT model FROM session_metrics WHERE model IS NOT NULL").fetchall()
    for (model,) in models:
        out += [
            queries.cost(conn, model=model),
            queries.cost(conn, model=model, start_date=days[1], end_date=days[1]),
        ]
    for row in conn.execute("SELECT DISTINCT endpoint, model FROM forward_request_metrics").fetchall():
        out.append(queries.forward_summary(conn, endpoint=row[0], model=row[1]))
        out.append(queries.forward_by_endpoint(conn, model=row[1]))
    return out


def reads_both_ways(url: str) -> tuple[list[Any], list[Any]]:
    """Every aggregate read from the roll-ups, and the same reads from the base tables."""
    with psycopg.connect(url) as conn:  # not autocommit: the second half is rolled back
        starts = conn.execute(
            """SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date FROM session_metrics
               WHERE started_at IS NOT NULL
               UNION SELECT (started_at AT TIME ZONE 'UTC')::date FROM forward_request_metrics
               WHERE started_at IS NOT NULL ORDER BY 1"""
        ).fetchall()
        days = [d for (d,) in starts] or [date(2026, 1, 1)]
        days = [days[0] - timedelta(days=1), *days, days[-1] + timedelta(days=1)]
        assert conn.execute("SELECT count(*) FROM rollup_backfill WHERE NOT done").fetchone() == (0,)
        from_rollups = _reads(conn, days)
        conn.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        from_base = _reads(conn, days)
        conn.rollback()
    return from_rollups, from_base


def _exact(value: Any) -> Any:
    """A sum as an exact number (costs are decimals: never truncated to an int)."""
    return Decimal(value).normalize() if value is not None else Decimal(0)


# Every latency metric's durations in ms from the base tables, as the triggers count them (a
# completion before its start as 0 ms), with what the latency read calls them.
_BASE_DURATIONS = f"""
SELECT kind, name, ms FROM (
    SELECT 'models' AS kind, 'duration' AS what, model AS name, GREATEST({_MS}, 0) AS ms, started_at
    FROM round_metrics WHERE started_at IS NOT NULL AND model IS NOT NULL AND completed_at IS NOT NULL
      AND completion_version IS DISTINCT FROM ''
    UNION ALL
    SELECT 'models', 'time_to_first_token', model, GREATEST(time_to_first_token_ms, 0), started_at
    FROM round_metrics
    WHERE started_at IS NOT NULL AND model IS NOT NULL AND time_to_first_token_ms IS NOT NULL
    UNION ALL
    SELECT 'tools', 'duration', tool_name, GREATEST({_MS}, 0), started_at
    FROM tool_call_metrics WHERE started_at IS NOT NULL AND tool_name IS NOT NULL AND completed_at IS NOT NULL
    UNION ALL
    SELECT 'endpoints', 'duration', endpoint, GREATEST({_MS}, 0), started_at
    FROM forward_request_metrics WHERE started_at IS NOT NULL AND endpoint IS NOT NULL
      AND completed_at IS NOT NULL AND completion_version IS DISTINCT FROM ''
      AND right(COALESCE(completion_version, ''), 11) <> '|reconciled'
) AS x
WHERE what = %(what)s AND started_at >= %(start_at)s AND started_at < %(end_at)s
"""

_DISC = f"""
SELECT kind, name, count(*),
       percentile_disc(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms)
FROM ({_BASE_DURATIONS}) AS d GROUP BY kind, name
"""


def assert_latency_within_error(conn: psycopg.Connection[Any], read: Latency) -> int:
    """A latency read against PostgreSQL's percentile_disc over the base rows of its span: the same
    counts, every percentile within RELATIVE_ERROR. Returns how many percentiles were compared."""
    got: dict[tuple[str, str, str], Percentiles] = {}
    for m in read.models:
        got["models", m.model, "duration"] = m.duration
        got["models", m.model, "time_to_first_token"] = m.time_to_first_token
    for t in read.tools:
        got["tools", t.tool_name, "duration"] = t.duration
    for e in read.endpoints:
        got["endpoints", e.endpoint, "duration"] = e.duration
    compared = 0
    for what in ("duration", "time_to_first_token"):
        params = {
            "what": what,
            "start_at": read.start or datetime.min.replace(tzinfo=UTC),
            "end_at": read.end or datetime.max.replace(tzinfo=UTC),
        }
        for kind, name, n, disc in conn.execute(_DISC, params).fetchall():
            p = got[kind, name, what]
            assert p.count == n, (kind, name, what)
            for mine, exact in zip((p.p50, p.p90, p.p95, p.p99), disc, strict=True):
                assert mine is not None
                assert abs(mine - float(exact)) <= (RELATIVE_ERROR + 1e-12) * float(exact), (kind, name, what)
                compared += 1
    # Nothing counted that the base rows do not have.
    assert all(p.count == 0 for key, p in got.items() if key not in _seen(conn, read))
    return compared


def _seen(conn: psycopg.Connection[Any], read: Latency) -> set[tuple[str, str, str]]:
    out = set()
    for what in ("duration", "time_to_first_token"):
        params = {
            "what": what,
            "start_at": read.start or datetime.min.replace(tzinfo=UTC),
            "end_at": read.end or datetime.max.replace(tzinfo=UTC),
        }
        out |= {(kind, name, what) for kind, name, *_ in conn.execute(_DISC, params).fetchall()}
    return out
