"""Read-side benchmark: every read at two scales in one run, the larger 10x the smaller, and its plan.

Run: ``.venv/bin/python bench/read_bench.py [--scales 1,10] [--runs 21] [--keep] [--refill]``
(DATABASE_URL, default the worker settings' default). At 1x: 110k sessions, about 1.1M rounds,
1.65M tool calls, 500k forwards over 90 days; 10x: 1.1M sessions, 11M rounds, 16.5M tool calls,
5M forwards. Each scale fills schema ``bench_read_<n>x`` with set-based SQL (generate_series;
the apply engine would take far too long) with the roll-up triggers off, as a database written
by the previous version, and the session aggregates recomputed from the rows; then the upgrade's
back-fill (worker.backfill) counts the rows into the roll-ups (timed), and the fold runs as the
hourly job would have by the reads' ``now`` (AT: the past days folded, the closed hours compacted).
Then VACUUM ANALYZE, one
warm-up and ``--runs`` timed calls of each read through worker.read.queries (median and min, ms),
and EXPLAIN ANALYZE of each read's statements with the indexes the executed nodes use. Last, for
every aggregate read: p50 at both scales and the ratio, checked against its bound at the larger
(AGGREGATES: 10 ms for the seed's reads, 5 ms for cost and latency, 50 ms for the dashboard's
whole overview) and <= 1.3x the smaller (exit status 1 if not). The schemas are dropped unless
--keep; ``--only cost --only latency`` times only the reads whose names start so (on kept schemas).

Give it a database of its own (``--database-url``, or DATABASE_URL): the back-fill holds the
schema's advisory lock, which is database-wide, for the whole back-fill (17 minutes at 10x on this
machine), and every apply of schema.sql to that database (a test's, a worker's start) waits for it.

The data carries what issue 23 reads: a user on 9 sessions in 10 (300 users), a provider, cache
reads and a time to first token on rounds, and a cost on every completed round and forward (a
fixed price per million tokens, as the pricer would store it; rare-model unpriced).

``--indexes proposed`` creates the extra indexes listed in PROPOSED_INDEXES first; ``schema``
(the default) drops them. Results go to bench/results/read.json, one entry per index set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.backfill import backfill
from worker.maintenance.fold import fold_latency
from worker.read import queries
from worker.read.queries import (
    cost_hours,
    cost_totals,
    forward_rows,
    forward_totals,
    hourly,
    percentiles,
    session_daily,
    session_hours,
    session_rows,
    session_totals,
    tool_totals,
)
from worker.schema import apply_schema
from worker.settings import DEFAULT_DATABASE_URL

END = date(2026, 2, 28)  # the data covers the 90 UTC days up to here
DAYS = 90
#: When the reads of the last hours run (cases), and the fold before them: half an hour into END's last hour.
AT = datetime.combine(END + timedelta(days=1), datetime.min.time(), UTC) - timedelta(minutes=30)
RESULTS = Path(__file__).resolve().parent / "results" / "read.json"

# Candidates beyond schema.sql, tried with --indexes proposed: (kind, name, statement). Each
# composite index also serves what the single-column one it starts with served. The statistics
# (PostgreSQL 14+) tell the planner how many UTC days x model/tool groups a range holds; without
# them it expects one group per row and will not aggregate in parallel.
# Those that schema.sql has adopted since are created in either mode (SCHEMA_SQL below), so the
# default run measures what a deployment has.
PROPOSED_INDEXES: list[tuple[str, str, str]] = [
    # The cost read's top sessions (ORDER BY cost_usd DESC LIMIT n over a date range): walked in
    # cost order instead of every session of the range sorted (issue 23: 200 ms at 10x without).
    ("INDEX", "idx_session_cost",
     ("CREATE INDEX IF NOT EXISTS idx_session_cost ON session_metrics"
      " (cost_usd DESC, session_id COLLATE \"C\") WHERE cost_usd <> 0 OR unpriced_rounds <> 0")),
    ("INDEX", "idx_session_model_started_at",
     "CREATE INDEX IF NOT EXISTS idx_session_model_started_at ON session_metrics (model, started_at)"),
    ("INDEX", "idx_forward_endpoint_started_at",
     ("CREATE INDEX IF NOT EXISTS idx_forward_endpoint_started_at"
      " ON forward_request_metrics (endpoint, started_at)")),
    ("INDEX", "idx_forward_model_started_at",
     ("CREATE INDEX IF NOT EXISTS idx_forward_model_started_at"
      " ON forward_request_metrics (model, started_at)")),
    ("INDEX", "idx_tool_started_at_name",
     ("CREATE INDEX IF NOT EXISTS idx_tool_started_at_name"
      " ON tool_call_metrics (started_at) INCLUDE (tool_name)")),
    ("INDEX", "idx_tool_session_name",
     "CREATE INDEX IF NOT EXISTS idx_tool_session_name ON tool_call_metrics (session_id, tool_name)"),
    ("STATISTICS", "st_session_utc_day_model",
     ("CREATE STATISTICS IF NOT EXISTS st_session_utc_day_model"
     " ON ((started_at AT TIME ZONE 'UTC')::date), model FROM session_metrics")),
    ("STATISTICS", "st_tool_utc_day_name",
     ("CREATE STATISTICS IF NOT EXISTS st_tool_utc_day_name"
     " ON ((started_at AT TIME ZONE 'UTC')::date), tool_name FROM tool_call_metrics")),
    ("STATISTICS", "st_forward_utc_day",
     ("CREATE STATISTICS IF NOT EXISTS st_forward_utc_day"
     " ON ((started_at AT TIME ZONE 'UTC')::date) FROM forward_request_metrics")),
]  # fmt: skip

SCHEMA_SQL = (Path(__file__).resolve().parent.parent / "schema.sql").read_text()

FILL = [
    (
        "sessions",
        """
INSERT INTO session_metrics (session_id, model, started_at, completed_at, status, message_count, updated_at,
                             user_id)
SELECT 's' || lpad(i::text, 8, '0'),
       CASE WHEN m < 0.40 THEN 'gpt-4' WHEN m < 0.70 THEN 'claude-3' WHEN m < 0.88 THEN 'llama-3'
            WHEN m < 0.995 THEN 'o1-mini' ELSE 'rare-model' END,
       started,
       CASE WHEN st < 0.05 THEN NULL ELSE started + (1 + 7200 * random()) * interval '1 second' END,
       CASE WHEN st < 0.05 THEN 'running' WHEN st < 0.75 THEN 'completed'
            WHEN st < 0.85 THEN 'awaiting_response' WHEN st < 0.95 THEN 'error' ELSE 'cancelled' END,
       (random() * 60)::int,
       started,
       CASE WHEN i %% 10 <> 0 THEN 'user-' || (i::bigint * 7919 %% 300) END
FROM (SELECT i, random() AS m, random() AS st,
             %(until)s::timestamptz
                 - random() * %(days)s * interval '1 day' AS started
      FROM generate_series(1, %(sessions)s) AS i) AS g
""",
    ),
    (
        "session stubs (no start yet)",
        """
INSERT INTO session_metrics (session_id, status, updated_at)
SELECT 'stub-' || i, 'completed', now() FROM generate_series(1, %(sessions)s / 1000) AS i
""",
    ),
    (
        "rounds (1..19 per session)",
        """
INSERT INTO round_metrics (round_id, session_id, model, started_at, completed_at, status, prompt_tokens,
                           completion_tokens, total_tokens, prompt_cached_tool_outputs, compression_count,
                           tokens_saved, error, provider, cache_read_tokens, time_to_first_token_ms,
                           cost_usd, cost_source, unpriced)
SELECT round_id, session_id, model, started,
       CASE WHEN st < 0.03 THEN NULL ELSE started + (1 + random() * 15000) * interval '1 ms' END,
       CASE WHEN st < 0.03 THEN 'running' WHEN st < 0.93 THEN 'success' WHEN st < 0.98 THEN 'error'
            ELSE 'cancelled' END,
       p, c, p + c, cached, compressions, compressions * 200,
       CASE WHEN st >= 0.93 AND st < 0.98 THEN 'upstream error' END,
       CASE WHEN model = 'claude-3' THEN 'anthropic' ELSE 'openai' END,
       CASE WHEN st >= 0.03 THEN (p * hit)::bigint END,
       CASE WHEN st >= 0.03 AND hit < 0.6 THEN (50 + hit * 2000)::bigint END,
       -- a price per million tokens as the engine's (cache reads at half); rare-model is unpriced
       CASE WHEN st >= 0.03 AND model <> 'rare-model'
            THEN (round(p * (1 - hit / 2)) * 2.5 + c * 10)::numeric / 1000000 END,
       CASE WHEN st >= 0.03 AND model <> 'rare-model' THEN 'bench' END,
       st >= 0.03 AND model = 'rare-model'
FROM (SELECT s.session_id || '-r' || g AS round_id, s.session_id, s.model,
             s.started_at + g * interval '20 seconds' AS started, random() AS st, random() AS hit,
             (random() * 4000)::bigint AS p, (random() * 1500)::bigint AS c, (random() * 4)::bigint AS cached,
             CASE WHEN random() < 0.1 THEN 1 ELSE 0 END AS compressions
      FROM session_metrics AS s
      CROSS JOIN LATERAL generate_series(1, 1 + abs(hashtext(s.session_id)) %% 19) AS g
      WHERE s.started_at IS NOT NULL) AS r
""",
    ),
    (
        "tool calls (0..3 per round)",
        """
INSERT INTO tool_call_metrics (tool_call_id, round_id, session_id, tool_name, started_at, completed_at,
                               success, error)
SELECT tool_call_id, round_id, session_id, name, started,
       CASE WHEN st < 0.05 THEN NULL ELSE started + (1 + random() * 3000) * interval '1 ms' END,
       CASE WHEN st < 0.05 THEN NULL ELSE st >= 0.1 END,
       CASE WHEN st >= 0.05 AND st < 0.1 THEN 'tool failed' END
FROM (SELECT r.round_id || '-t' || k AS tool_call_id, r.round_id, r.session_id,
             r.started_at + k * interval '2 seconds' AS started,
             (ARRAY['read_file', 'write_file', 'exec', 'search', 'edit', 'list_dir', 'web_fetch',
                    'rare_tool'])
                 [1 + floor(random() * random() * 8)::int] AS name,
             random() AS st
      FROM round_metrics AS r
      CROSS JOIN LATERAL generate_series(1, abs(hashtext(r.round_id)) %% 4) AS k) AS t
""",
    ),
    (
        "tool call stubs (completion before start)",
        """
INSERT INTO tool_call_metrics (tool_call_id, round_id, session_id, completed_at, success)
SELECT round_id || '-stub', round_id, session_id, started_at + interval '1 second', true
FROM round_metrics WHERE abs(hashtext(round_id)) %% 1000 = 0
""",
    ),
    (
        "session aggregates from rounds",
        """
UPDATE session_metrics AS s
SET total_rounds = a.rounds, prompt_tokens = a.p, completion_tokens = a.c, total_tokens = a.t,
    prompt_cached_tool_outputs = a.cached, total_compression_events = a.compressions,
    total_tokens_saved = a.saved, cost_usd = a.usd, unpriced_rounds = a.unpriced
FROM (SELECT session_id, count(*) AS rounds, sum(prompt_tokens) AS p, sum(completion_tokens) AS c,
             sum(total_tokens) AS t, sum(prompt_cached_tool_outputs) AS cached,
             sum(compression_count) AS compressions, sum(tokens_saved) AS saved,
             COALESCE(sum(cost_usd), 0) AS usd, count(*) FILTER (WHERE unpriced) AS unpriced
      FROM round_metrics GROUP BY session_id) AS a
WHERE s.session_id = a.session_id
""",
    ),
    (
        "session aggregates from tool calls",
        """
UPDATE session_metrics AS s SET tool_call_count = a.calls
FROM (SELECT session_id, count(*) AS calls FROM tool_call_metrics GROUP BY session_id) AS a
WHERE s.session_id = a.session_id
""",
    ),
    (
        "forwarded requests",
        """
INSERT INTO forward_request_metrics (forward_id, endpoint, model, is_stream, started_at, completed_at,
                                     status_code, status, prompt_tokens, completion_tokens, total_tokens,
                                     error, updated_at, time_to_first_token_ms, cost_usd, cost_source,
                                     unpriced)
SELECT 'f' || lpad(i::text, 8, '0'),
       CASE WHEN e < 0.5 THEN 'openai.chat_completions' WHEN e < 0.8 THEN 'anthropic.messages'
            WHEN e < 0.995 THEN 'openai.responses' ELSE 'rare.endpoint' END,
       CASE WHEN m < 0.5 THEN 'gpt-4' WHEN m < 0.8 THEN 'claude-3' WHEN m < 0.995 THEN 'llama-3'
            ELSE 'rare-model' END,
       random() < 0.6, started,
       CASE WHEN st < 0.03 THEN NULL ELSE started + (50 + random() * 60000) * interval '1 ms' END,
       CASE WHEN st < 0.03 THEN NULL WHEN st < 0.9 THEN 200 WHEN st < 0.97 THEN 502 END,
       CASE WHEN st < 0.03 THEN 'pending' WHEN st < 0.9 THEN 'success' WHEN st < 0.97 THEN 'error'
            ELSE 'timeout' END,
       CASE WHEN st >= 0.03 AND st < 0.9 THEN p END,
       CASE WHEN st >= 0.03 AND st < 0.9 THEN c END,
       CASE WHEN st >= 0.03 AND st < 0.9 THEN p + c END,
       CASE WHEN st >= 0.9 THEN 'upstream failed' END,
       started,
       CASE WHEN st >= 0.03 AND st < 0.9 AND m < 0.6 THEN (40 + m * 1500)::bigint END,
       CASE WHEN st >= 0.03 AND st < 0.9 AND m < 0.995 THEN (p * 2.5 + c * 10)::numeric / 1000000 END,
       CASE WHEN st >= 0.03 AND st < 0.9 AND m < 0.995 THEN 'bench' END,
       st >= 0.03 AND st < 0.9 AND m >= 0.995
FROM (SELECT i, random() AS e, random() AS m, random() AS st, (random() * 4000)::bigint AS p,
             (random() * 1500)::bigint AS c,
             %(until)s::timestamptz
                 - random() * %(days)s * interval '1 day' AS started
      FROM generate_series(1, %(forwards)s) AS i) AS g
""",
    ),
    (
        "sync mismatches",
        """
INSERT INTO execute_sync_mismatch_metrics (reason, mismatch_date, count, updated_at)
SELECT reason, d::date, 1 + (random() * 50)::int, now()
FROM unnest(ARRAY['message_count', 'pending_question', 'last_message_id', 'tool_state', 'title']) AS reason,
     generate_series(%(end)s::date - (%(days)s - 1), %(end)s::date, interval '1 day') AS d
""",
    ),
]


def connect(url: str, schema: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")


def filled_sizes(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    found = conn.execute("SELECT to_regclass('bench_meta') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return None
    row = conn.execute("SELECT sizes FROM bench_meta").fetchone()
    return None if row is None else dict(row[0])


def fill(
    url: str, schema: str, sessions: int, forwards: int, until: datetime | None = None
) -> dict[str, Any]:
    """Fill ``schema`` with ``sessions`` and ``forwards`` started over the DAYS days before
    ``until`` (default: the end of END), and back-fill the roll-ups; the row counts."""
    until = until or datetime.combine(END + timedelta(days=1), datetime.min.time(), UTC)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(schema)))
        admin.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
    with connect(url, schema) as conn:
        apply_schema(conn)
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(0.6)")
        # Set-based fill with the roll-up triggers off (as a database written by the previous
        # version), then the upgrade's back-fill counts the rows into the roll-ups.
        conn.execute("SET session_replication_role = replica")
        end = (until - timedelta(microseconds=1)).astimezone(UTC).date()
        params = {"sessions": sessions, "forwards": forwards, "until": until, "end": end, "days": DAYS}
        for label, statement in FILL:
            began = time.perf_counter()
            cur = conn.execute(statement, params, prepare=False)
            print(f"  {label}: {cur.rowcount:,} rows in {time.perf_counter() - began:.1f} s", flush=True)
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("UPDATE rollup_backfill SET done = false, upto = NULL")
        began = time.perf_counter()
        counted = backfill(conn, chunk_size=50_000)
        backfill_s = time.perf_counter() - began
        print(f"  roll-ups back-filled in {backfill_s:.1f} s: {counted}", flush=True)
        sizes = {
            table: conn.execute(
                pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in ("session_metrics", "round_metrics", "tool_call_metrics", "forward_request_metrics")
        }
        sizes.update(
            requested_sessions=sessions, requested_forwards=forwards, backfill_s=round(backfill_s, 1)
        )
        sizes["rollup_rows"] = conn.execute(
            "SELECT (SELECT count(*) FROM session_rollup) + (SELECT count(*) FROM tool_rollup)"
            " + (SELECT count(*) FROM forward_rollup) + (SELECT count(*) FROM round_hourly)"
            " + (SELECT count(*) FROM latency_hourly) + (SELECT count(*) FROM tool_hourly)"
            " + (SELECT count(*) FROM session_hourly)"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("CREATE TABLE bench_meta (sizes jsonb NOT NULL)")
        conn.execute("INSERT INTO bench_meta VALUES (%s)", (json.dumps(sizes),))
    return sizes


def set_indexes(conn: psycopg.Connection[Any], which: str) -> None:
    for kind, name, create in PROPOSED_INDEXES:
        if which == "proposed" or name in SCHEMA_SQL:  # adopted since: schema.sql's, never dropped
            conn.execute(create)
        else:
            drop = pgsql.SQL("DROP INDEX IF EXISTS {}" if kind == "INDEX" else "DROP STATISTICS IF EXISTS {}")
            conn.execute(drop.format(pgsql.Identifier(name)))
    began = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - began:.1f} s", flush=True)


def _plan_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    text = node["Node Type"]
    if node.get("Scan Direction") == "Backward":
        text += " Backward"
    if "Index Name" in node:
        text += f" using {node['Index Name']}"
    if "Relation Name" in node:
        text += f" on {node['Relation Name']}"
    if "CTE Name" in node:
        text += f" ({node['CTE Name']})"
    text += f"  (rows≈{node['Plan Rows']:,}, cost {node['Total Cost']:,.0f})"
    lines = ["  " * depth + text]
    for child in node.get("Plans", []):
        lines.extend(_plan_lines(child, depth + 1))
    return lines


def _used(node: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Indexes and sequentially scanned tables of the nodes that ran (a read's base-table branch,
    ruled out by its one-time filter, is planned but never executed)."""
    if node.get("Actual Loops") == 0:
        return set(), set()
    indexes = {node["Index Name"]} if "Index Name" in node else set()
    seq = {node["Relation Name"]} if node["Node Type"] == "Seq Scan" else set()
    for child in node.get("Plans", []):
        i, s = _used(child)
        indexes |= i
        seq |= s
    return indexes, seq


def explain(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any]) -> dict[str, Any]:
    row = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params, prepare=False).fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    indexes, seq = _used(plan)
    return {"plan": _plan_lines(plan), "indexes": sorted(indexes), "seq_scans": sorted(seq)}


Case = tuple[str, Callable[[psycopg.Connection[Any]], Any], list[tuple[str, dict[str, Any]]], bool]


def cases(detail_id: str) -> list[Case]:
    """(name, call, [(sql, params) it runs], selective: should use indexes, no seq scan)."""
    week = END - timedelta(days=6)
    month = END - timedelta(days=29)
    no_dates: dict[str, Any] = {"start_date": None, "end_date": None}
    last_week: dict[str, Any] = {"start_date": week, "end_date": END}
    s, p, f, r = session_totals, session_rows, forward_totals, forward_rows
    d = session_daily
    end_at = datetime.combine(END + timedelta(days=1), datetime.min.time(), UTC)  # the hours up to END's end
    week_at, day_at, now = (
        end_at - timedelta(days=7),
        end_at - timedelta(hours=24),
        AT,
    )

    def page(**kw: Any) -> dict[str, Any]:
        return {**no_dates, "model": None, "limit": 100, "cursor": None, **kw}

    def fpage(**kw: Any) -> dict[str, Any]:
        return {**no_dates, "endpoint": None, "model": None, "limit": 100, **kw}

    def costs(**kw: Any) -> list[tuple[str, dict[str, Any]]]:
        params = {**no_dates, "model": None, "user_id": None, "top": 10, **kw}
        return [(q, params) for q in (cost_totals.COST_ROWS_FROM_ROLLUP, cost_totals.USERS_FROM_ROLLUP,
                                      cost_totals.TOP_SESSIONS)]  # fmt: skip

    last_day = {"start_at": day_at, "end_at": end_at}

    def hours_page(c: psycopg.Connection[Any]) -> None:
        """What the overview's "last 24 hours" asks for, one read after another: /v1/overview?hours=24
        (summary, series, tools), /v1/cost?hours=24, /v1/latency?hours=24."""
        queries.summary(c, hours=24, now=now)
        queries.hourly_series(c, hours=24, now=now)
        queries.tool_metrics(c, hours=24, now=now)
        queries.cost(c, hours=24, now=now)
        queries.latency(c, hours=24, now=now)

    def overview_page(c: psycopg.Connection[Any]) -> None:
        """What the dashboard's overview asks for, one read after another (the page sends them
        side by side): /v1/overview (summary, daily, tools), /v1/cost, /v1/latency."""
        queries.summary(c, **last_week)
        queries.daily_metrics(c, days=7, end_date=END)
        queries.tool_metrics(c, **last_week)
        queries.cost(c, **last_week)
        queries.latency(c, **last_week)

    return [
        ("summary, all", lambda c: queries.summary(c), [(s.SUMMARY_FROM_ROLLUP, no_dates)], False),
        ("summary, last 7 days", lambda c: queries.summary(c, start_date=week, end_date=END),
         [(s.SUMMARY_FROM_ROLLUP, last_week)], True),
        ("by_model, all", lambda c: queries.by_model(c), [(s.BY_MODEL_FROM_ROLLUP, no_dates)], False),
        ("by_model, last 7 days", lambda c: queries.by_model(c, start_date=week, end_date=END),
         [(s.BY_MODEL_FROM_ROLLUP, last_week)], True),
        ("sessions, first page (100)", lambda c: queries.sessions(c), [(p.SESSIONS_OLDER, page())], True),
        ("sessions, 1000 of last 7 days",
         lambda c: queries.sessions(c, start_date=week, end_date=END, limit=1000),
         [(p.SESSIONS_OLDER, page(limit=1000, **last_week))], True),
        ("sessions, model=rare-model (0.5%)", lambda c: queries.sessions(c, model="rare-model"),
         [(p.SESSIONS_OLDER, page(model="rare-model"))], True),
        ("sessions, model=gpt-4, last 7 days", lambda c: queries.sessions(c, model="gpt-4", **last_week),
         [(p.SESSIONS_OLDER, page(model="gpt-4", **last_week))], True),
        ("sessions, the page older than a session", lambda c: queries.sessions(c, before=detail_id),
         [(p.SESSIONS_OLDER, page(cursor=detail_id))], True),
        ("sessions, the page newer than a session", lambda c: queries.sessions(c, after=detail_id),
         [(p.SESSIONS_NEWER, page(cursor=detail_id))], True),
        ("session_detail (19 rounds)", lambda c: queries.session_detail(c, detail_id),
         [(q, {"session_id": detail_id}) for q in (p.SESSION, p.SESSION_ROUNDS, p.SESSION_TOOL_CALLS)], True),
        ("daily_metrics, 7 days", lambda c: queries.daily_metrics(c, days=7, end_date=END),
         [(d.DAILY_FROM_ROLLUP, last_week)], True),
        ("daily_metrics, 30 days", lambda c: queries.daily_metrics(c, days=30, end_date=END),
         [(d.DAILY_FROM_ROLLUP, {"start_date": month, "end_date": END})], False),
        ("forward_summary, all", lambda c: queries.forward_summary(c),
         [(f.FORWARD_SUMMARY_FROM_ROLLUP, {**no_dates, "endpoint": None, "model": None})], False),
        ("forward_summary, endpoint=rare.endpoint",
         lambda c: queries.forward_summary(c, endpoint="rare.endpoint"),
         [(f.FORWARD_SUMMARY_FROM_ROLLUP, {**no_dates, "endpoint": "rare.endpoint", "model": None})], True),
        ("forward_summary, last 7 days", lambda c: queries.forward_summary(c, **last_week),
         [(f.FORWARD_SUMMARY_FROM_ROLLUP, {**last_week, "endpoint": None, "model": None})], True),
        ("forward_by_endpoint, all", lambda c: queries.forward_by_endpoint(c),
         [(f.FORWARD_BY_ENDPOINT_FROM_ROLLUP, {**no_dates, "model": None})], False),
        ("forward_by_endpoint, last 7 days", lambda c: queries.forward_by_endpoint(c, **last_week),
         [(f.FORWARD_BY_ENDPOINT_FROM_ROLLUP, {**last_week, "model": None})], True),
        ("forward_requests, first page (100)", lambda c: queries.forward_requests(c),
         [(r.FORWARD_REQUESTS, fpage())], True),
        ("forward_requests, endpoint=rare.endpoint",
         lambda c: queries.forward_requests(c, endpoint="rare.endpoint"),
         [(r.FORWARD_REQUESTS, fpage(endpoint="rare.endpoint"))], True),
        ("forward_requests, model=rare-model", lambda c: queries.forward_requests(c, model="rare-model"),
         [(r.FORWARD_REQUESTS, fpage(model="rare-model"))], True),
        ("forward_daily_metrics, 7 days", lambda c: queries.forward_daily_metrics(c, days=7, end_date=END),
         [(f.FORWARD_DAILY_FROM_ROLLUP, last_week)], True),
        ("forward_daily_metrics, 30 days", lambda c: queries.forward_daily_metrics(c, days=30, end_date=END),
         [(f.FORWARD_DAILY_FROM_ROLLUP, {"start_date": month, "end_date": END})], False),
        ("latency, last 7 days", lambda c: queries.latency(c, **last_week),
         [(percentiles.LATENCY_FROM_ROLLUP, {"start_at": week_at, "end_at": end_at})], True),
        ("latency, last 24 hours", lambda c: queries.latency(c, hours=24, now=now),
         [(percentiles.LATENCY_OF_HOURS_FROM_ROLLUP, {"start_at": day_at, "end_at": end_at})], True),
        ("hourly_series, 24 hours", lambda c: queries.hourly_series(c, hours=24, now=now),
         [(hourly.SERIES_FROM_ROLLUP,
           {"start_at": day_at, "end_at": end_at, "model": None})], True),
        ("cost, all", lambda c: queries.cost(c), costs(), False),
        ("cost, last 7 days", lambda c: queries.cost(c, **last_week), costs(**last_week), True),
        ("cost, last 7 days, model=gpt-4", lambda c: queries.cost(c, **last_week, model="gpt-4", top=1),
         [(q, {**no_dates, "user_id": None, **last_week, "model": "gpt-4", "top": 1})
          for q in (cost_totals.COST_ROWS_FROM_ROLLUP, cost_totals.USERS_OF_MODEL_FROM_ROLLUP,
                    cost_totals.TOP_SESSIONS)], True),
        ("summary, last 24 hours", lambda c: queries.summary(c, hours=24, now=now),
         [(session_hours.SUMMARY_OF_HOURS, last_day)], True),
        ("by_model, last 24 hours", lambda c: queries.by_model(c, hours=24, now=now),
         [(session_hours.BY_MODEL_OF_HOURS, last_day)], True),
        ("tool_metrics, last 24 hours", lambda c: queries.tool_metrics(c, hours=24, now=now),
         [(tool_totals.TOOLS_OF_HOURS, last_day)], True),
        ("forward_summary, last 24 hours", lambda c: queries.forward_summary(c, hours=24, now=now),
         [(f.FORWARD_SUMMARY_OF_HOURS, {**last_day, "endpoint": None, "model": None})], True),
        ("cost, last 24 hours", lambda c: queries.cost(c, hours=24, now=now),
         [(q, {**last_day, **cost_hours.split_days(day_at, end_at), "model": None, "user_id": None,
               "top": 10})
          for q in (cost_hours.COST_ROWS_OF_HOURS_FROM_ROLLUP, cost_hours.USERS_OF_HOURS_FROM_ROLLUP,
                    cost_hours.TOP_SESSIONS_OF_HOURS)], True),
        # The same at half past 11:00 (the dashboard's any time of day), long after (the data's "now"
        # is past: the sessions of the 12 hours of either UTC date are read, the worst split).
        ("cost, last 24 hours at 11:30", lambda c: queries.cost(c, hours=24, now=now - timedelta(hours=12)),
         [(q, {"start_at": day_at - timedelta(hours=12), "end_at": end_at - timedelta(hours=12),
               **cost_hours.split_days(day_at - timedelta(hours=12), end_at - timedelta(hours=12)),
               "model": None, "user_id": None, "top": 10})
          for q in (cost_hours.COST_ROWS_OF_HOURS_FROM_ROLLUP, cost_hours.USERS_OF_HOURS_FROM_ROLLUP,
                    cost_hours.TOP_SESSIONS_OF_HOURS)], True),
        ("overview page, last 24 hours", hours_page, [], True),
        ("overview page with cost and latency, 7 days", overview_page,
         [(s.SUMMARY_FROM_ROLLUP, last_week), (d.DAILY_FROM_ROLLUP, last_week),
          (tool_totals.TOOLS_FROM_ROLLUP, last_week)], True),
    ]  # fmt: skip


def run(
    conns: dict[int, psycopg.Connection[Any]], runs: int, only: tuple[str, ...] = ()
) -> dict[int, list[dict[str, Any]]]:
    """Time every read at every scale, the scales taking turns run by run (so the machine's noise
    falls on all of them alike), then EXPLAIN ANALYZE it at each."""
    detail = {}
    for scale, conn in conns.items():
        row = conn.execute(
            "SELECT session_id FROM session_metrics WHERE total_rounds = 19 ORDER BY session_id LIMIT 1"
        ).fetchone()
        assert row is not None, "no session with 19 rounds: refill"
        detail[scale] = row[0]
    out: dict[int, list[dict[str, Any]]] = {scale: [] for scale in conns}
    per_scale = {
        scale: [c for c in cases(detail[scale]) if not only or c[0].startswith(only)] for scale in conns
    }
    for k in range(len(per_scale[next(iter(conns))])):
        times: dict[int, list[float]] = {scale: [] for scale in conns}
        for scale, conn in conns.items():
            per_scale[scale][k][1](conn)  # warm-up
        for _ in range(runs):
            for scale, conn in conns.items():
                call = per_scale[scale][k][1]
                began = time.perf_counter()
                call(conn)
                times[scale].append((time.perf_counter() - began) * 1000)
        for scale, conn in conns.items():
            name, _, statements, selective = per_scale[scale][k]
            plans = [explain(conn, q, p) for q, p in statements]
            indexes = sorted({i for p in plans for i in p["indexes"]})
            seq = sorted({t for p in plans for t in p["seq_scans"]})
            # The roll-ups, the back-fill state and the fold watermark are small whatever the history:
            # scanning them is fine.
            base_seq = [t for t in seq if "rollup" not in t and t != "latency_fold"]
            warn = "  <-- seq scan where an index should serve" if selective and base_seq else ""
            median_ms = statistics.median(times[scale])
            print(
                f"{scale:>3}x {name:45s} median {median_ms:8.2f} ms   min {min(times[scale]):8.2f} ms{warn}"
            )
            print(f"{'':49s} indexes: {', '.join(indexes) or '-'}; seq scans: {', '.join(seq) or '-'}")
            out[scale].append(
                {
                    "read": name,
                    "median_ms": round(median_ms, 3),
                    "min_ms": round(min(times[scale]), 3),
                    "runs": runs,
                    "indexes": indexes,
                    "seq_scans": seq,
                    "selective": selective,
                    "plans": [p["plan"] for p in plans],
                }
            )
    return out


#: Every aggregate read (by the start of its name) and the most its p50 may take at the larger
#: scale (ms): 10 for the seed's reads; 5 for cost and latency (issue 23); 50 for the whole
#: dashboard overview. Each within 1.3x of the smaller scale too (not the overview: its bound is
#: the page's).
AGGREGATES = {
    "summary": 10.0,
    "by_model": 10.0,
    "daily_metrics": 10.0,
    "forward_summary": 10.0,
    "forward_by_endpoint": 10.0,
    "forward_daily": 10.0,
    "cost": 5.0,
    "latency": 5.0,
    "hourly_series": 5.0,
    "tool_metrics": 10.0,
    "overview page": 50.0,
}


def prepare(url: str, schema: str, args: argparse.Namespace, scale: int) -> dict[str, Any]:
    """Fill (or reuse) one scale's schema, with the index set asked for; its row counts."""
    sessions, forwards = args.sessions * scale, args.forwards * scale
    with connect(url, schema) as conn:
        sizes = None if args.refill else filled_sizes(conn)
    if (
        sizes is None
        or sizes.get("requested_sessions") != sessions
        or sizes.get("requested_forwards") != forwards
    ):
        print(f"filling schema {schema} ...", flush=True)
        began = time.perf_counter()
        sizes = fill(url, schema, sessions, forwards)
        print(f"filled in {time.perf_counter() - began:.0f} s", flush=True)
    else:
        print(f"reusing schema {schema} (--refill to fill it again)")
        with connect(url, schema) as conn:  # this checkout's schema.sql, and the back-fill it asks for
            apply_schema(conn)
            began = time.perf_counter()
            counted = {k: n for k, n in backfill(conn, chunk_size=50_000).items() if n}
            if counted:
                print(f"  roll-ups back-filled in {time.perf_counter() - began:.1f} s: {counted}", flush=True)
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items() if not k.startswith("requested")))
    with connect(url, schema) as conn:
        # What the hourly fold job has done by AT in a deployment: the past days folded (the months
        # before them into user_cost_monthly), the closed hours compacted (worker/maintenance/fold.py).
        began = time.perf_counter()
        folded = fold_latency(conn, now=AT)
        print(f"  folded in {time.perf_counter() - began:.1f} s: {folded}", flush=True)
        set_indexes(conn, args.indexes)
    return sizes


def compare(small: dict[str, Any], large: dict[str, Any]) -> list[dict[str, Any]]:
    """Every aggregate read's p50 at both scales and their ratio; the issue's bounds checked."""
    factor = large["scale"] // small["scale"]
    print(
        f"\naggregate reads, p50 (ms): {small['scale']}x vs {large['scale']}x ({factor}x the history)"
        "; bounds: the p50 at the larger, and 1.3x the smaller"
    )
    out = []
    before = {r["read"]: r["median_ms"] for r in small["reads"]}
    for r in large["reads"]:
        bound = next((ms for prefix, ms in AGGREGATES.items() if r["read"].startswith(prefix)), None)
        if bound is None:
            continue
        ratio = r["median_ms"] / before[r["read"]]
        ok = r["median_ms"] <= bound and (ratio <= 1.3 or r["read"].startswith("overview page"))
        print(
            f"{r['read']:45s} {before[r['read']]:7.2f} -> {r['median_ms']:7.2f}"
            f"   x{ratio:4.2f}  {'ok' if ok else 'OVER'}"
        )
        out.append({"read": r["read"], "small_ms": before[r["read"]], "large_ms": r["median_ms"],
                    "ratio": round(ratio, 3), "bound_ms": bound, "within_bounds": ok})  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        help=f"PostgreSQL URL (env DATABASE_URL; else {DEFAULT_DATABASE_URL})",
        metavar="URL",
    )
    parser.add_argument(
        "--schema", default="bench_read", help="schema prefix (default: %(default)s_<scale>x)"
    )
    parser.add_argument("--sessions", type=int, default=110_000, help="sessions at 1x (about 10 rounds each)")
    parser.add_argument("--forwards", type=int, default=500_000, help="forwarded requests at 1x")
    parser.add_argument("--scales", default="1,10", help="comma-separated multiples of the 1x sizes")
    parser.add_argument("--keep", action="store_true", help="keep the filled schemas (default: drop them)")
    parser.add_argument("--refill", action="store_true", help="drop and fill the schemas again")
    parser.add_argument("--runs", type=int, default=21, help="timed runs per read (median reported)")
    parser.add_argument("--indexes", choices=["schema", "proposed"], default="schema",
                        help="schema.sql's indexes only, or with PROPOSED_INDEXES too")  # fmt: skip
    parser.add_argument("--plans", action="store_true", help="print every plan in full")
    parser.add_argument(
        "--only", action="append", default=[], help="time only the reads whose names start so (repeatable)"
    )
    args = parser.parse_args()
    url = args.database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    scales = sorted(int(x) for x in args.scales.split(","))
    measured = []
    try:
        sizes = {scale: prepare(url, f"{args.schema}_{scale}x", args, scale) for scale in scales}
        conns = {scale: connect(url, f"{args.schema}_{scale}x") for scale in scales}
        try:
            print(
                f"\nindexes: {args.indexes}; median of {args.runs} runs after a warm-up, "
                "scales taking turns\n"
            )
            results = run(conns, args.runs, tuple(args.only))
            server = conns[scales[0]].execute("SHOW server_version").fetchone()
        finally:
            for conn in conns.values():
                conn.close()
        for scale in scales:
            if args.plans:
                for r in results[scale]:
                    print(f"\n{scale}x {r['read']}")
                    for plan in r["plans"]:
                        print("\n".join("    " + line for line in plan))
            measured.append(
                {
                    "scale": scale,
                    "rows": sizes[scale],
                    "reads": results[scale],
                    "postgres": server and server[0],
                }
            )
    finally:
        if not args.keep:
            with psycopg.connect(url, autocommit=True) as admin:
                for scale in scales:
                    name = pgsql.Identifier(f"{args.schema}_{scale}x")
                    admin.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
    comparison = compare(measured[0], measured[-1]) if len(measured) > 1 else []

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous.setdefault("runs", {})[args.indexes] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "proposed_indexes": [create for _, _, create in PROPOSED_INDEXES]
        if args.indexes == "proposed"
        else [],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "scales": measured,
        "aggregates": comparison,
    }
    RESULTS.write_text(json.dumps(previous, indent=2, default=str))
    print(f"\nwrote {RESULTS}")
    return 0 if all(c["within_bounds"] for c in comparison) else 1


if __name__ == "__main__":
    sys.exit(main())
