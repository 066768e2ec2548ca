"""Stale reconciliation: the seed's ``reconcile_stale_executions``, safe next to live workers.

Agents die without saying goodbye. A row is stale when it still says running/pending, nothing
about it happened for longer than the grace period, and (sessions and their rounds) the
producer's heartbeat for its session has expired (``Keys.active_sessions``). Then, as the seed:

- a running session becomes ``awaiting_response`` if hinted so (``Keys.awaiting_sessions``),
  else ``completed``; completed_at is set;
- a running round becomes ``error`` / ``reconciled_stale_round``;
- a pending forward becomes ``error`` / ``reconciled_stale_forward``.

**Late real events win.** Each guess is stamped with a version the apply engine compares like
any event's order key (worker/sql.py), chosen just above what the row shows and below any real
event that can still come:

- round: ``completion_version = ''``, greater than none, smaller than every real completion;
- session: ``status_version = <its start's key> || '|reconciled'``, greater than that start
  (and a redelivered copy of it), smaller than any later completion or restart;
- forward: ``completion_version = <its start's key> || '|reconciled'``, which counts as a
  completion of that start and loses to any real one.

So a round.completed still in the stream when its round was reconciled overrides the guess, and
the final state is as if it had arrived in time. ``updated_at`` is left alone for the same
reason (it is the latest occurred_at of a real event; the seed's wall-clock stamp could never
be undone). Reconcile changes no token column, so the session aggregates, which the engine
maintains by deltas, stay exact without the seed's refresh.

**Locks: never wait on a worker.** Candidates are taken ``FOR UPDATE SKIP LOCKED`` in key order,
in the engine's table order (rounds, forwards, sessions), one transaction per chunk; a row a
worker is applying right now is skipped and left to the next run. The UPDATE re-checks each
row's condition on the locked, latest version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import redis

from contract.keys import Keys
from worker.maintenance import in_transaction

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1000

# A stub round (no start yet) has no time of its own: its session's latest event stands in.
RECONCILE_ROUNDS = """
WITH c AS (
    SELECT r.round_id
    FROM round_metrics r
    LEFT JOIN session_metrics s ON s.session_id = r.session_id
    WHERE r.status = 'running' AND r.completion_version IS NULL
      AND COALESCE(r.started_at, s.updated_at) < %(idle_before)s
      AND NOT EXISTS (SELECT 1 FROM unnest(%(active)b::text[]) AS a(id) WHERE a.id = r.session_id)
    ORDER BY r.round_id
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE round_metrics r SET
    status = 'error',
    error = COALESCE(r.error, 'reconciled_stale_round'),
    completed_at = COALESCE(r.completed_at, %(now)s),
    completion_version = ''
FROM c
WHERE r.round_id = c.round_id AND r.status = 'running' AND r.completion_version IS NULL
RETURNING r.round_id
"""

RECONCILE_FORWARDS = """
WITH c AS (
    SELECT forward_id
    FROM forward_request_metrics
    WHERE status = 'pending' AND completion_version IS NULL AND start_version IS NOT NULL
      AND started_at < %(idle_before)s AND updated_at < %(idle_before)s
    ORDER BY forward_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE forward_request_metrics f SET
    status = 'error',
    error = COALESCE(f.error, 'reconciled_stale_forward'),
    completed_at = COALESCE(f.completed_at, %(now)s),
    completion_version = f.start_version || '|reconciled'
FROM c
WHERE f.forward_id = c.forward_id
  AND f.status = 'pending' AND f.completion_version IS NULL AND f.start_version IS NOT NULL
RETURNING f.forward_id
"""

# Stubs (no start yet, started_at NULL) are not sessions to readers and are left alone.
RECONCILE_SESSIONS = """
WITH c AS (
    SELECT s.session_id
    FROM session_metrics s
    WHERE s.status = 'running' AND s.started_at IS NOT NULL AND s.updated_at < %(idle_before)s
      AND NOT EXISTS (SELECT 1 FROM unnest(%(active)b::text[]) AS a(id) WHERE a.id = s.session_id)
    ORDER BY s.session_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE session_metrics s SET
    status = CASE WHEN s.session_id = ANY(%(awaiting)b::text[]) THEN 'awaiting_response' ELSE 'completed' END,
    completed_at = COALESCE(s.completed_at, %(now)s),
    status_version = COALESCE(s.status_version, '') || '|reconciled'
FROM c
WHERE s.session_id = c.session_id
  AND s.status = 'running' AND s.started_at IS NOT NULL AND s.updated_at < %(idle_before)s
RETURNING s.session_id, s.status
"""


@dataclass(frozen=True)
class Hints:
    """The producers' liveness hints at one moment."""

    active: frozenset[str] = frozenset()    # sessions with a live heartbeat
    awaiting: frozenset[str] = frozenset()  # sessions waiting for the user's answer


def read_hints(client: redis.Redis, keys: Keys, now: datetime) -> Hints:
    """Sessions whose heartbeat expires after ``now``, and every session marked awaiting.

    Raises Redis errors: without the hints every session would look dead, so no hints means
    no reconcile, never "nobody is alive".
    """
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.active_sessions, f"({now.timestamp()!r}", "+inf")
    pipe.zrange(keys.awaiting_sessions, 0, -1)
    active, awaiting = pipe.execute()
    return Hints(frozenset(map(_text, active)), frozenset(map(_text, awaiting)))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def reconcile(
    conn: psycopg.Connection[Any],
    hints: Hints,
    *,
    now: datetime,
    grace: timedelta,
    chunk_size: int = DEFAULT_CHUNK,
) -> dict[str, int]:
    """Reconcile every stale row, ``chunk_size`` rows per table per transaction; the counts."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be at least 1, got {chunk_size}")
    params = {
        "now": now,
        "idle_before": now - grace,
        "active": sorted(hints.active),
        "awaiting": sorted(hints.awaiting),
        "limit": chunk_size,
    }
    counts = {"rounds": 0, "forwards": 0, "sessions_completed": 0, "sessions_awaiting": 0, "chunks": 0}

    def chunk(cur: psycopg.Cursor[Any]) -> tuple[int, int, list[str]]:
        # The engine's lock order: rounds, (tool calls, counters,) forwards, sessions.
        rounds = len(cur.execute(RECONCILE_ROUNDS, params).fetchall())
        forwards = len(cur.execute(RECONCILE_FORWARDS, params).fetchall())
        sessions = [status for _, status in cur.execute(RECONCILE_SESSIONS, params).fetchall()]
        return rounds, forwards, sessions

    while True:
        rounds, forwards, sessions = in_transaction(conn, chunk)
        counts["chunks"] += 1
        counts["rounds"] += rounds
        counts["forwards"] += forwards
        counts["sessions_awaiting"] += sessions.count("awaiting_response")
        counts["sessions_completed"] += len(sessions) - sessions.count("awaiting_response")
        log.debug("reconcile chunk: rounds=%s forwards=%s sessions=%s", rounds, forwards, len(sessions))
        if max(rounds, forwards, len(sessions)) < chunk_size:
            break
    counts["reconciled"] = (counts["rounds"] + counts["forwards"] + counts["sessions_completed"]
                            + counts["sessions_awaiting"])
    counts["active_hints"] = len(hints.active)
    counts["awaiting_hints"] = len(hints.awaiting)
    return counts
