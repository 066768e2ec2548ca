"""Stale reconciliation: the seed's ``reconcile_stale_executions``, safe next to live workers.

Agents die without saying goodbye. A row is stale when it still says running/pending, nothing
about it happened for longer than the grace period, and (sessions and their rounds) the
producer's heartbeat for its session has expired (``Keys.active_sessions``). Then, as the seed:

- a running session becomes ``awaiting_response`` if hinted so (``Keys.awaiting_sessions``),
  else ``completed``, and is marked: ``reconciled_at`` = now;
- a running round becomes ``error`` / ``reconciled_stale_round``;
- a pending forward becomes ``error`` / ``reconciled_stale_forward``.

**Late real events win.** Each guess is stamped with a version the apply engine compares like
any event's order key (worker/engine/sql.py), chosen just above what the row shows and below any real
event that can still come:

- round: ``completion_version = ''``, greater than none, smaller than every real completion;
- session: ``status_version = <its start's key> || '|reconciled'``, greater than that start
  (and a redelivered copy of it), smaller than any later completion or restart;
- forward: ``completion_version = <its start's key> || '|reconciled'``, which counts as a
  completion of that start and loses to any real one.

So a round.completed still in the stream when its round was reconciled overrides the guess, and
the final state is as if it had arrived in time. ``updated_at`` is left alone for the same
reason (it is the latest occurred_at of a real event; the seed's wall-clock stamp could never
be undone).

**The guess tells the truth about time.** Unlike the seed, completed_at is the last activity,
not the time reconcile ran: a session's ``updated_at`` (every event of the session moves it, its
rounds', tool calls' and compressions' too), a round's latest of its start and its session's
last activity. Nothing is known to have happened after it, and a dead agent's session gets no
duration it did not have. The mark (``reconciled_at``) keeps the guess apart from the seed's
statuses, which stay as they are. Any event later than the last activity reopens the session
(the apply engine clears the mark, worker/engine/sql.py); the next reconcile closes it again
at its new last activity, with the same stamp (``|reconciled`` is not appended twice).

Reconcile changes no token column, so the session aggregates, which the engine maintains by
deltas, stay exact without the seed's refresh. The roll-ups move with each reconciled session
(a status bucket, its reconciled flag) and forward (a completion) by schema.sql's triggers, in
the same transaction. A reconciled forward keeps the reconcile time as completed_at: nothing
but its start is known of it.

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

from contract.connect import Client
from contract.entries import as_text
from contract.keys import Keys
from worker.maintenance.chunks import in_transaction

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 1000

# Each table is walked along its partial index (status running/pending) in key order, one page
# per chunk after the previous page's last key. Pages are read without locks; the heartbeat
# filter is a set lookup in Python (a list of thousands of live sessions inside the SQL would
# be a per-row array scan under a generic plan). Then the survivors are locked SKIP LOCKED and
# updated with their condition re-checked on the locked, latest row.

# A round is idle when it started before the grace period and nothing has happened in its
# session since (its tool calls, for one, move the session's updated_at); a stub round (no start
# yet) has only its session's time. GREATEST skips NULLs.
_ROUND_IS_IDLE = "GREATEST(r.started_at, s.updated_at) < %(idle_before)s"

PAGE_ROUNDS = f"""
SELECT r.round_id, r.session_id
FROM round_metrics r
LEFT JOIN session_metrics s ON s.session_id = r.session_id
WHERE r.status = 'running' AND r.completion_version IS NULL AND r.round_id > %(after)s
  AND {_ROUND_IS_IDLE}
ORDER BY r.round_id
LIMIT %(limit)s
"""

RECONCILE_ROUNDS = f"""
WITH c AS (
    SELECT r.round_id, GREATEST(r.started_at, s.updated_at) AS last_activity FROM round_metrics r
    LEFT JOIN session_metrics s ON s.session_id = r.session_id
    WHERE r.round_id = ANY(%(ids)b::text[]) AND r.status = 'running' AND r.completion_version IS NULL
      AND {_ROUND_IS_IDLE}
    ORDER BY r.round_id
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE round_metrics r SET
    status = 'error',
    error = COALESCE(r.error, 'reconciled_stale_round'),
    completed_at = COALESCE(r.completed_at, c.last_activity, %(now)s),
    completion_version = ''
FROM c
WHERE r.round_id = c.round_id
RETURNING r.round_id
"""

PAGE_FORWARDS = """
SELECT forward_id
FROM forward_request_metrics
WHERE status = 'pending' AND completion_version IS NULL AND forward_id > %(after)s
  AND started_at < %(idle_before)s AND updated_at < %(idle_before)s
ORDER BY forward_id
LIMIT %(limit)s
"""

RECONCILE_FORWARDS = """
WITH c AS (
    SELECT forward_id FROM forward_request_metrics
    WHERE forward_id = ANY(%(ids)b::text[])
      AND status = 'pending' AND completion_version IS NULL AND start_version IS NOT NULL
      AND started_at < %(idle_before)s AND updated_at < %(idle_before)s
    ORDER BY forward_id
    FOR UPDATE SKIP LOCKED
)
UPDATE forward_request_metrics f SET
    status = 'error',
    error = COALESCE(f.error, 'reconciled_stale_forward'),
    completed_at = COALESCE(f.completed_at, %(now)s),
    completion_version = f.start_version || '|reconciled'
FROM c
WHERE f.forward_id = c.forward_id
RETURNING f.forward_id
"""

# Stubs (no start yet, started_at NULL) are not sessions to readers and are left alone.
PAGE_SESSIONS = """
SELECT session_id
FROM session_metrics
WHERE status = 'running' AND started_at IS NOT NULL AND session_id > %(after)s
  AND updated_at < %(idle_before)s
ORDER BY session_id
LIMIT %(limit)s
"""

RECONCILE_SESSIONS = """
WITH t AS (
    SELECT * FROM unnest(%(ids)b::text[], %(statuses)b::text[]) AS t(session_id, status)
), c AS (
    SELECT s.session_id, t.status FROM session_metrics s JOIN t USING (session_id)
    WHERE s.status = 'running' AND s.started_at IS NOT NULL AND s.updated_at < %(idle_before)s
    ORDER BY s.session_id
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE session_metrics s SET
    status = c.status,
    completed_at = s.updated_at,
    reconciled_at = %(now)s,
    status_version = CASE WHEN s.status_version LIKE '%%|reconciled' THEN s.status_version
                          ELSE COALESCE(s.status_version, '') || '|reconciled' END
FROM c
WHERE s.session_id = c.session_id
RETURNING s.session_id, s.status
"""


@dataclass(frozen=True)
class HintSnapshot:
    """The producers' liveness hints as read at one moment (written by ``producer.hints.HintWriter``)."""

    active: frozenset[str] = frozenset()  # sessions with a live heartbeat
    awaiting: frozenset[str] = frozenset()  # sessions waiting for the user's answer


def read_hints(client: Client, keys: Keys, now: datetime) -> HintSnapshot:
    """Sessions whose heartbeat expires after ``now``, and every session marked awaiting.

    Raises Redis errors: without the hints every session would look dead, so no hints means
    no reconcile, never "nobody is alive".
    """
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.active_sessions, f"({now.timestamp()!r}", "+inf")
    pipe.zrange(keys.awaiting_sessions, 0, -1)
    active, awaiting = pipe.execute()
    return HintSnapshot(frozenset(map(as_text, active)), frozenset(map(as_text, awaiting)))


def reconcile(
    conn: psycopg.Connection[Any],
    hints: HintSnapshot,
    *,
    now: datetime,
    grace: timedelta,
    chunk_size: int = DEFAULT_CHUNK,
) -> dict[str, int]:
    """Reconcile every stale row, a page of ``chunk_size`` keys per table per transaction; the counts."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be at least 1, got {chunk_size}")
    base = {"now": now, "idle_before": now - grace, "limit": chunk_size}
    # Keyset cursors, None once a table is walked. A page's rows skipped (live heartbeat) or
    # locked by a worker right now are passed over; the next run sees them again.
    after: dict[str, str | None] = {"rounds": "", "forwards": "", "sessions": ""}
    next_after = dict(after)
    counts = {"rounds": 0, "forwards": 0, "sessions_completed": 0, "sessions_awaiting": 0, "chunks": 0}

    def page(cur: psycopg.Cursor[Any], sql: str, table: str) -> list[tuple[Any, ...]]:
        rows = cur.execute(sql, {**base, "after": after[table]}).fetchall()
        next_after[table] = rows[-1][0] if len(rows) == chunk_size else None
        return rows

    def chunk(cur: psycopg.Cursor[Any]) -> tuple[int, int, list[str]]:
        # The engine's lock order: rounds, (tool calls, counters,) forwards, sessions.
        rounds = forwards = 0
        sessions: list[str] = []
        if after["rounds"] is not None:
            ids = [rid for rid, sid in page(cur, PAGE_ROUNDS, "rounds") if sid not in hints.active]
            if ids:
                rounds = len(cur.execute(RECONCILE_ROUNDS, {**base, "ids": ids}).fetchall())
        if after["forwards"] is not None:
            ids = [fid for (fid,) in page(cur, PAGE_FORWARDS, "forwards")]
            if ids:
                forwards = len(cur.execute(RECONCILE_FORWARDS, {**base, "ids": ids}).fetchall())
        if after["sessions"] is not None:
            ids = [sid for (sid,) in page(cur, PAGE_SESSIONS, "sessions") if sid not in hints.active]
            if ids:
                statuses = ["awaiting_response" if sid in hints.awaiting else "completed" for sid in ids]
                rows = cur.execute(RECONCILE_SESSIONS, {**base, "ids": ids, "statuses": statuses}).fetchall()
                sessions = [status for _, status in rows]
        return rounds, forwards, sessions

    while any(cursor is not None for cursor in after.values()):
        next_after.update(after)
        rounds, forwards, sessions = in_transaction(conn, chunk)
        after = dict(next_after)
        counts["chunks"] += 1
        counts["rounds"] += rounds
        counts["forwards"] += forwards
        counts["sessions_awaiting"] += sessions.count("awaiting_response")
        counts["sessions_completed"] += len(sessions) - sessions.count("awaiting_response")
        log.debug("reconcile chunk: rounds=%s forwards=%s sessions=%s", rounds, forwards, len(sessions))
    counts["reconciled"] = (
        counts["rounds"] + counts["forwards"] + counts["sessions_completed"] + counts["sessions_awaiting"]
    )
    counts["active_hints"] = len(hints.active)
    counts["awaiting_hints"] = len(hints.awaiting)
    return counts
