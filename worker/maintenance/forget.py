"""Forgetting on request: one session's (or several) data deleted everywhere it is stored.

Everywhere is: the session row, its rounds, tool calls and linked forwards (worker/maintenance/removal.py),
what the roll-ups counted for them (schema.sql's triggers subtract it in the same transaction), and
its liveness hints in Redis (``Keys.active_sessions``, ``Keys.awaiting_sessions``). Idempotent:
forgetting what is already gone deletes nothing and says so. Sessions are taken a chunk per
transaction, waiting for any worker writing one of them.

Not deleted: ``applied_counter_events`` (event ids of counted compressions, tied to no session;
they expire with the dedupe window, and keep a redelivered compression from counting twice), and
the events still in the streams or dead letters: an event of a forgotten session delivered
afterwards stores its rows again, as for any new id.

One user's data is the sessions whose session.started named them (``session_metrics.user_id``):
:func:`sessions_of_users` finds their ids, to pass here (``metrics-worker forget --user ID``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg

from contract.connect import Client
from contract.keys import Keys
from worker.maintenance.chunks import in_transaction
from worker.maintenance.removal import Removed, remove_sessions

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 500

# The sessions of some users, along the partial index on user_id (schema.sql, idx_session_user).
SESSIONS_OF_USERS = """
SELECT session_id FROM session_metrics WHERE user_id = ANY(%(users)s::text[]) ORDER BY session_id
"""


@dataclass(frozen=True)
class Forgotten:
    """What went: rows per table, and liveness hints (members removed from the two sorted sets)."""

    sessions: int = 0
    rounds: int = 0
    tool_calls: int = 0
    forwards: int = 0
    hints: int = 0

    def describe(self) -> str:
        """One line for a person: ``forgot 1 session, 3 rounds, 5 tool calls, 0 forwards, 1 hint``."""
        parts = [
            _count(self.sessions, "session"),
            _count(self.rounds, "round"),
            _count(self.tool_calls, "tool call"),
            _count(self.forwards, "forward"),
            _count(self.hints, "hint"),
        ]
        return "forgot " + ", ".join(parts)


def forget_sessions(
    conn: psycopg.Connection[Any],
    client: Client,
    keys: Keys,
    session_ids: Iterable[str],
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> Forgotten:
    """Delete every row and hint of ``session_ids``; what went (all zero when nothing was left).

    ``conn`` in autocommit mode (each chunk is a transaction of its own). Rows go first, then the
    hints: if Redis fails, the rows are gone and running it again removes the hints."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be at least 1, got {chunk_size}")
    ids = sorted(set(session_ids))
    removed = Removed()
    for start in range(0, len(ids), chunk_size):
        removed += in_transaction(conn, partial(_remove, ids[start : start + chunk_size]))
    hints = _forget_hints(client, keys, ids)
    done = Forgotten(removed.sessions, removed.rounds, removed.tool_calls, removed.forwards, hints)
    log.info("forget: %s", done.describe())
    return done


def sessions_of_users(conn: psycopg.Connection[Any], user_ids: Iterable[str]) -> list[str]:
    """The ids of the sessions whose session.started named one of ``user_ids``."""
    users = sorted(set(user_ids))
    if not users:
        return []
    return [sid for (sid,) in conn.execute(SESSIONS_OF_USERS, {"users": users}).fetchall()]


def _remove(ids: list[str], cur: psycopg.Cursor[Any]) -> Removed:
    return remove_sessions(cur, ids)


def _forget_hints(client: Client, keys: Keys, ids: list[str]) -> int:
    if not ids:
        return 0
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(ids), 1000):
        pipe.zrem(keys.active_sessions, *ids[start : start + 1000])
        pipe.zrem(keys.awaiting_sessions, *ids[start : start + 1000])
    return sum(int(n) for n in pipe.execute())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
