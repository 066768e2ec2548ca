"""Retention in PostgreSQL: the seed's ``prune_rounds_before`` and the expiry of every table that grows.

The Redis side of retention (dead letters, expired hints) is worker/maintenance/trims.py.

What goes, each in bounded chunks (one short transaction per ``chunk_size`` rows, so pruning a
year does not hold one giant transaction or lock the workers out):

- rounds started before the cutoff, with their tool calls (the seed's ON DELETE CASCADE), then
  the aggregates of the sessions they belonged to, and only those: the deleted rows'
  contributions are subtracted (the seed recomputes every session; deltas give the same result
  since the engine keeps aggregates equal to the sum of the children);
- stub rounds (their start never arrived) of sessions idle since before the cutoff;
- tool calls whose round is not stored (never arrived, or was pruned before they came), started
  before the cutoff or, never started, of sessions idle since before it; their sessions'
  ``tool_call_count`` goes down with them;
- forwarded requests started before the cutoff, and stub forwards last touched before it;
- sessions whose last activity (``updated_at``, the latest event of the session) is before the
  cutoff, with whatever children they still have (worker/maintenance/removal.py), unless their
  producer's heartbeat is live (``live``): whatever their status, a session nobody has heard of
  for the whole retention goes, its roll-up contribution with it;
- stub sessions (no start ever arrived) last touched before the cutoff, once childless;
- sync-mismatch counters of UTC dates before the cutoff's date;
- ``applied_counter_events`` older than the dedupe window, and ``maintenance_runs`` before the cutoff;
- the alerts' history and notifications before the cutoff (their state stays: it is now).

Every deletion and aggregate adjustment moves the roll-ups (schema.sql's triggers) in the same
transaction, so the aggregate reads lose exactly what was pruned.

Unlike the seed, sessions do not outlive the retention. Within it, a session outlives its pruned
rounds, its aggregates then covering the rounds that remain; its ``updated_at`` stays the time of
its latest event. Sessions are walked along the started_at index (a session idle since before the
cutoff started before it), a keyset page per transaction, and locked as removal.py says.

The dedupe window (``METRICS_DEDUPE_WINDOW``, default 14 days) must be longer than any
redelivery can take: a round.compressed or sync.mismatch delivered again after its event_id
expired here would be counted twice. Entries are redelivered within minutes (claim idle time x
max deliveries) unless the workers are down; the window covers an outage of two weeks.

Lock order is the engine's (rounds, tool calls, sessions, each in key order). Rows to delete
are taken ``SKIP LOCKED`` (a row a worker holds is left for the next run, so those statements
never wait); the only waits are for the tool calls of locked rounds and the sessions to adjust,
both in key order, as the engine takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import psycopg

from worker.maintenance.chunks import in_transaction
from worker.maintenance.removal import Removed, remove_sessions

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1000

# -- rounds ---------------------------------------------------------------------------------------
# Oldest first along the started_at index; SKIP LOCKED means this never waits, so the order of
# these locks does not matter for deadlocks.
LOCK_OLD_ROUNDS = """
SELECT round_id FROM round_metrics
WHERE started_at < %(cutoff)s
ORDER BY started_at, round_id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

LOCK_STUB_ROUNDS = """
SELECT r.round_id FROM round_metrics r
LEFT JOIN session_metrics s ON s.session_id = r.session_id
WHERE r.started_at IS NULL AND COALESCE(s.updated_at, '-infinity') < %(cutoff)s
ORDER BY r.round_id
LIMIT %(limit)s
FOR UPDATE OF r SKIP LOCKED
"""

LOCK_TOOLS_OF_ROUNDS = """
SELECT tool_call_id FROM tool_call_metrics
WHERE round_id = ANY(%(ids)b::text[])
ORDER BY tool_call_id
FOR UPDATE
"""

# Returns, per session, what the deleted rows contributed to its aggregates (a NULL session_id
# group holds rows of no session, which contributed nothing).
DELETE_ROUNDS_AND_TOOLS = """
WITH dead_t AS (
    DELETE FROM tool_call_metrics WHERE round_id = ANY(%(ids)b::text[])
    RETURNING session_id
), dead_r AS (
    DELETE FROM round_metrics WHERE round_id = ANY(%(ids)b::text[])
    RETURNING session_id, prompt_tokens, completion_tokens, total_tokens, prompt_cached_tool_outputs,
              compression_count, tokens_saved, COALESCE(cache_read_tokens, 0) AS cache_read,
              COALESCE(cache_write_tokens, 0) AS cache_write, COALESCE(reasoning_tokens, 0) AS reasoning,
              COALESCE(cost_usd, 0) AS cost, unpriced::int AS unpriced
)
SELECT session_id, sum(rounds)::int8, sum(prompt_tokens)::int8, sum(completion_tokens)::int8,
       sum(total_tokens)::int8, sum(pcto)::int8, sum(compressions)::int8, sum(tokens_saved)::int8,
       sum(tools)::int8, sum(cache_read)::int8, sum(cache_write)::int8, sum(reasoning)::int8,
       sum(cost)::numeric, sum(unpriced)::int8
FROM (
    SELECT session_id, 1 AS rounds, prompt_tokens, completion_tokens, total_tokens,
           prompt_cached_tool_outputs AS pcto, compression_count AS compressions, tokens_saved, 0 AS tools,
           cache_read, cache_write, reasoning, cost, unpriced
    FROM dead_r
    UNION ALL
    SELECT session_id, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0 FROM dead_t
) AS d
GROUP BY session_id
"""

# A tool call whose round is not stored would otherwise outlive every retention, and its count
# its session's. SKIP LOCKED: never waits.
LOCK_ORPHAN_TOOLS = """
SELECT t.tool_call_id FROM tool_call_metrics t
LEFT JOIN session_metrics s ON s.session_id = t.session_id
WHERE (t.started_at < %(cutoff)s
       OR (t.started_at IS NULL AND COALESCE(s.updated_at, '-infinity') < %(cutoff)s))
  AND NOT EXISTS (SELECT 1 FROM round_metrics r WHERE r.round_id = t.round_id)
ORDER BY t.tool_call_id
LIMIT %(limit)s
FOR UPDATE OF t SKIP LOCKED
"""

# The same per-session deltas as DELETE_ROUNDS_AND_TOOLS: tool calls only.
DELETE_TOOLS = """
WITH dead AS (DELETE FROM tool_call_metrics WHERE tool_call_id = ANY(%(ids)b::text[]) RETURNING session_id)
SELECT session_id, 0::int8, 0::int8, 0::int8, 0::int8, 0::int8, 0::int8, 0::int8, count(*)::int8,
       0::int8, 0::int8, 0::int8, 0::numeric, 0::int8
FROM dead
GROUP BY session_id
"""

LOCK_SESSIONS = """
SELECT session_id FROM session_metrics
WHERE session_id = ANY(%(ids)b::text[])
ORDER BY session_id
FOR UPDATE
"""

SUBTRACT_FROM_SESSIONS = """
UPDATE session_metrics s SET
    total_rounds = s.total_rounds - d.rounds,
    prompt_tokens = s.prompt_tokens - d.prompt_tokens,
    completion_tokens = s.completion_tokens - d.completion_tokens,
    total_tokens = s.total_tokens - d.total_tokens,
    prompt_cached_tool_outputs = s.prompt_cached_tool_outputs - d.pcto,
    total_compression_events = s.total_compression_events - d.compressions,
    total_tokens_saved = s.total_tokens_saved - d.tokens_saved,
    tool_call_count = s.tool_call_count - d.tools,
    cache_read_tokens = s.cache_read_tokens - d.cache_read,
    cache_write_tokens = s.cache_write_tokens - d.cache_write,
    reasoning_tokens = s.reasoning_tokens - d.reasoning,
    cost_usd = s.cost_usd - d.cost,
    unpriced_rounds = s.unpriced_rounds - d.unpriced
FROM unnest(%(session_id)b::text[], %(rounds)b::int8[], %(prompt_tokens)b::int8[],
            %(completion_tokens)b::int8[], %(total_tokens)b::int8[], %(pcto)b::int8[],
            %(compressions)b::int8[], %(tokens_saved)b::int8[], %(tools)b::int8[],
            %(cache_read)b::int8[], %(cache_write)b::int8[], %(reasoning)b::int8[],
            %(cost)b::numeric[], %(unpriced)b::int8[])
    AS d(session_id, rounds, prompt_tokens, completion_tokens, total_tokens, pcto, compressions,
         tokens_saved, tools, cache_read, cache_write, reasoning, cost, unpriced)
WHERE s.session_id = d.session_id
"""

_DELTA_COLUMNS = (
    "session_id",
    "rounds",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "pcto",
    "compressions",
    "tokens_saved",
    "tools",
    "cache_read",
    "cache_write",
    "reasoning",
    "cost",
    "unpriced",
)

# -- single-table expiries: DELETE ... WHERE key IN (a chunk locked with SKIP LOCKED) -------------
DELETE_OLD_FORWARDS = """
DELETE FROM forward_request_metrics WHERE forward_id IN (
    SELECT forward_id FROM forward_request_metrics
    WHERE started_at < %(cutoff)s
    ORDER BY started_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""

DELETE_STUB_FORWARDS = """
DELETE FROM forward_request_metrics WHERE forward_id IN (
    SELECT forward_id FROM forward_request_metrics
    WHERE started_at IS NULL AND updated_at < %(cutoff)s
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""

DELETE_OLD_MISMATCHES = """
DELETE FROM execute_sync_mismatch_metrics WHERE (reason, mismatch_date) IN (
    SELECT reason, mismatch_date FROM execute_sync_mismatch_metrics
    WHERE mismatch_date < %(cutoff_date)s
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""

DELETE_OLD_COUNTER_EVENTS = """
DELETE FROM applied_counter_events WHERE event_id IN (
    SELECT event_id FROM applied_counter_events
    WHERE applied_at < %(dedupe_before)s
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""

DELETE_OLD_RUNS = """
DELETE FROM maintenance_runs WHERE run_id IN (
    SELECT run_id FROM maintenance_runs WHERE started_at < %(cutoff)s LIMIT %(limit)s)
"""

# -- idle sessions: a page of candidates read without locks, then removal.py's locked delete --------
DELETE_OLD_ALERT_HISTORY = """
DELETE FROM alert_history WHERE id IN (
    SELECT id FROM alert_history WHERE at < %(cutoff)s LIMIT %(limit)s)
"""

DELETE_OLD_ALERT_NOTIFICATIONS = """
DELETE FROM alert_notifications WHERE (key, receiver) IN (
    SELECT key, receiver FROM alert_notifications WHERE created_at < %(cutoff)s LIMIT %(limit)s)
"""

PAGE_IDLE_SESSIONS = """
SELECT session_id, started_at FROM session_metrics
WHERE started_at < %(cutoff)s AND updated_at < %(cutoff)s
  AND (started_at, session_id) > (%(after_started)s, %(after_id)s)
ORDER BY started_at, session_id
LIMIT %(limit)s
"""

# -- stub sessions: lock a page, then delete the childless ones --------------------------------------
# The NOT EXISTS runs in a statement after the lock: any worker transaction adding a child to
# one of these sessions needs the session's lock to commit, so the check sees every child.
LOCK_STUB_SESSIONS = """
SELECT session_id FROM session_metrics
WHERE started_at IS NULL AND updated_at < %(cutoff)s AND session_id > %(after)s
ORDER BY session_id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

DELETE_CHILDLESS_SESSIONS = """
DELETE FROM session_metrics s
WHERE s.session_id = ANY(%(ids)b::text[])
  AND NOT EXISTS (SELECT 1 FROM round_metrics r WHERE r.session_id = s.session_id)
  AND NOT EXISTS (SELECT 1 FROM tool_call_metrics t WHERE t.session_id = s.session_id)
"""


def prune(
    conn: psycopg.Connection[Any],
    *,
    cutoff: datetime,
    dedupe_before: datetime,
    chunk_size: int = DEFAULT_CHUNK,
    live: Collection[str] = frozenset(),
) -> dict[str, int]:
    """Delete what is older than ``cutoff`` (and counter bookkeeping before ``dedupe_before``);
    ``live``: sessions with a live heartbeat, kept however long they have been quiet."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be at least 1, got {chunk_size}")
    params: dict[str, Any] = {
        "cutoff": cutoff,
        "cutoff_date": cutoff.date(),
        "dedupe_before": dedupe_before,
        "limit": chunk_size,
    }
    counts = {"rounds": 0, "tool_calls": 0, "session_updates": 0}
    for lock_sql, delete_sql in (
        (LOCK_OLD_ROUNDS, DELETE_ROUNDS_AND_TOOLS),
        (LOCK_STUB_ROUNDS, DELETE_ROUNDS_AND_TOOLS),
        (LOCK_ORPHAN_TOOLS, DELETE_TOOLS),
    ):
        for key, n in _prune_with_deltas(conn, lock_sql, delete_sql, params).items():
            counts[key] += n
    counts["forwards"] = _delete_chunks(conn, DELETE_OLD_FORWARDS, params)
    counts["forwards"] += _delete_chunks(conn, DELETE_STUB_FORWARDS, params)
    removed = _prune_idle_sessions(conn, params, live)
    counts["sessions"] = removed.sessions
    counts["rounds"] += removed.rounds
    counts["tool_calls"] += removed.tool_calls
    counts["forwards"] += removed.forwards
    counts["stub_sessions"] = _prune_stub_sessions(conn, params)
    counts["sync_mismatches"] = _delete_chunks(conn, DELETE_OLD_MISMATCHES, params)
    counts["counter_events"] = _delete_chunks(conn, DELETE_OLD_COUNTER_EVENTS, params)
    counts["maintenance_runs"] = _delete_chunks(conn, DELETE_OLD_RUNS, params)
    counts["alert_history"] = _delete_chunks(conn, DELETE_OLD_ALERT_HISTORY, params)
    counts["alert_notifications"] = _delete_chunks(conn, DELETE_OLD_ALERT_NOTIFICATIONS, params)
    return counts


def _prune_with_deltas(
    conn: psycopg.Connection[Any], lock_sql: str, delete_sql: str, params: dict[str, Any]
) -> dict[str, int]:
    """Delete rounds (with their tool calls) or tool calls, a locked chunk at a time, and subtract
    what they contributed from their sessions, in the same transaction."""
    counts = {"rounds": 0, "tool_calls": 0, "session_updates": 0}

    def chunk(cur: psycopg.Cursor[Any]) -> tuple[int, dict[str, int]]:
        ids = sorted(row[0] for row in cur.execute(lock_sql, params).fetchall())
        done = {"rounds": 0, "tool_calls": 0, "session_updates": 0}
        if not ids:
            return 0, done
        if delete_sql is DELETE_ROUNDS_AND_TOOLS:
            cur.execute(LOCK_TOOLS_OF_ROUNDS, {"ids": ids})
        deltas = cur.execute(delete_sql, {"ids": ids}).fetchall()
        done["rounds"] = sum(row[1] for row in deltas)
        done["tool_calls"] = sum(row[8] for row in deltas)
        deltas = sorted(row for row in deltas if row[0] is not None)
        if deltas:
            cur.execute(LOCK_SESSIONS, {"ids": [row[0] for row in deltas]})
            cur.execute(
                SUBTRACT_FROM_SESSIONS,
                dict(zip(_DELTA_COLUMNS, map(list, zip(*deltas, strict=True)), strict=True)),
            )
            done["session_updates"] = cur.rowcount
        return len(ids), done

    while True:
        locked, done = in_transaction(conn, chunk)  # counted once committed, not per attempt
        for key, n in done.items():
            counts[key] += n
        log.debug("prune rounds chunk: %s", done)
        if locked < params["limit"]:
            return counts


def _delete_chunks(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> int:
    total = 0
    while True:
        deleted = in_transaction(conn, _rowcount(sql, params))
        total += deleted
        if deleted < params["limit"]:
            return total


def _rowcount(sql: str, params: dict[str, Any]) -> Callable[[psycopg.Cursor[Any]], int]:
    def work(cur: psycopg.Cursor[Any]) -> int:
        cur.execute(sql, params)
        return cur.rowcount

    return work


def _prune_stub_sessions(conn: psycopg.Connection[Any], params: dict[str, Any]) -> int:
    total = 0
    after = ""  # keyset: stubs that still have children are passed over, not selected again

    def chunk(cur: psycopg.Cursor[Any]) -> tuple[list[str], int]:
        ids = [row[0] for row in cur.execute(LOCK_STUB_SESSIONS, {**params, "after": after}).fetchall()]
        if not ids:
            return ids, 0
        cur.execute(DELETE_CHILDLESS_SESSIONS, {"ids": ids})
        return ids, cur.rowcount

    while True:
        ids, deleted = in_transaction(conn, chunk)
        total += deleted
        if len(ids) < params["limit"]:
            return total
        after = ids[-1]


def _prune_idle_sessions(
    conn: psycopg.Connection[Any], params: dict[str, Any], live: Collection[str]
) -> Removed:
    """Sessions quiet since before the cutoff, with their children, a page per transaction."""
    removed = Removed()
    # Keyset: the previous page's last row (a row comparison the started_at index serves).
    after: dict[str, Any] = {"after_started": datetime.min.replace(tzinfo=UTC), "after_id": ""}

    def chunk(cur: psycopg.Cursor[Any]) -> tuple[list[tuple[str, datetime]], Removed]:
        page = cur.execute(PAGE_IDLE_SESSIONS, {**params, **after}).fetchall()
        ids = [sid for sid, _ in page if sid not in live]
        return page, remove_sessions(cur, ids, idle_before=params["cutoff"])

    while True:
        page, done = in_transaction(conn, chunk)
        removed += done
        log.debug("prune sessions chunk: %s", done)
        if len(page) < params["limit"]:
            return removed
        after = {"after_started": page[-1][1], "after_id": page[-1][0]}
