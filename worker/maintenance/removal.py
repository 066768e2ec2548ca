"""Deleting whole sessions with everything stored under them, in the apply engine's lock order.

Shared by retention (worker/maintenance/prune.py: sessions idle past the retention) and
forgetting (worker/maintenance/forget.py: the sessions someone asked to delete). A session goes
with its rounds, its tool calls and the forwards linked to it (``forward_request_metrics.session_id``,
forward.started's optional link). Each table's roll-up trigger (schema.sql) subtracts exactly what
was deleted, in the same transaction; a deleted session's own aggregates need no adjusting.

**Locks.** The engine locks rounds, tool calls, forwards, then sessions, each in key order; so does
this, so it can wait for a worker without a deadlock. The children are locked first (waiting: a
worker holds them only for its batch), then the sessions: retention takes them ``SKIP LOCKED``
and re-checks that they are still idle (a session a worker is writing right now is not idle, and
is left for the next run), forgetting waits for them. Once the session is locked, no worker can
commit a new child of it (every child's event also writes its session), so the DELETEs see them
all. An event that arrives afterwards writes its rows again, as it would for any id never seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

LOCK_ROUNDS = """
SELECT round_id FROM round_metrics
WHERE session_id = ANY(%(ids)b::text[])
ORDER BY round_id
FOR UPDATE
"""

LOCK_TOOLS = """
SELECT tool_call_id FROM tool_call_metrics
WHERE session_id = ANY(%(ids)b::text[])
ORDER BY tool_call_id
FOR UPDATE
"""

LOCK_FORWARDS = """
SELECT forward_id FROM forward_request_metrics
WHERE session_id = ANY(%(ids)b::text[])
ORDER BY forward_id
FOR UPDATE
"""

# Retention: still idle (the condition re-checked on the locked, latest row), never waiting.
LOCK_IDLE_SESSIONS = """
SELECT session_id FROM session_metrics
WHERE session_id = ANY(%(ids)b::text[]) AND started_at IS NOT NULL AND updated_at < %(idle_before)s
ORDER BY session_id
FOR UPDATE SKIP LOCKED
"""

# Forgetting: every one asked for, waiting for a worker that holds one.
LOCK_SESSIONS = """
SELECT session_id FROM session_metrics
WHERE session_id = ANY(%(ids)b::text[])
ORDER BY session_id
FOR UPDATE
"""

DELETE_TOOLS = "DELETE FROM tool_call_metrics WHERE session_id = ANY(%(ids)b::text[])"
DELETE_ROUNDS = "DELETE FROM round_metrics WHERE session_id = ANY(%(ids)b::text[])"
DELETE_FORWARDS = "DELETE FROM forward_request_metrics WHERE session_id = ANY(%(ids)b::text[])"
DELETE_SESSIONS = "DELETE FROM session_metrics WHERE session_id = ANY(%(ids)b::text[])"


@dataclass(frozen=True)
class Removed:
    """How many rows of each table went."""

    sessions: int = 0
    rounds: int = 0
    tool_calls: int = 0
    forwards: int = 0

    def __add__(self, other: Removed) -> Removed:
        return Removed(
            self.sessions + other.sessions,
            self.rounds + other.rounds,
            self.tool_calls + other.tool_calls,
            self.forwards + other.forwards,
        )


def remove_sessions(
    cur: psycopg.Cursor[Any], session_ids: Sequence[str], *, idle_before: datetime | None = None
) -> Removed:
    """Delete ``session_ids`` with their children, in the caller's transaction.

    ``idle_before`` set (retention): only started sessions whose last activity is before it, and
    only those no worker holds right now; their children go with them. ``None`` (forgetting):
    every row stored under those ids, the session row or not (a stub's children, say)."""
    ids = sorted(set(session_ids))
    if not ids:
        return Removed()
    cur.execute(LOCK_ROUNDS, {"ids": ids})
    cur.execute(LOCK_TOOLS, {"ids": ids})
    cur.execute(LOCK_FORWARDS, {"ids": ids})
    if idle_before is not None:
        rows = cur.execute(LOCK_IDLE_SESSIONS, {"ids": ids, "idle_before": idle_before}).fetchall()
        ids = [row[0] for row in rows]
        if not ids:
            return Removed()
    else:
        cur.execute(LOCK_SESSIONS, {"ids": ids})
    tools = cur.execute(DELETE_TOOLS, {"ids": ids}).rowcount
    rounds = cur.execute(DELETE_ROUNDS, {"ids": ids}).rowcount
    forwards = cur.execute(DELETE_FORWARDS, {"ids": ids}).rowcount
    sessions = cur.execute(DELETE_SESSIONS, {"ids": ids}).rowcount
    return Removed(sessions=sessions, rounds=rounds, tool_calls=tools, forwards=forwards)
