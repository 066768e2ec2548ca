"""Back-filling the roll-ups of a database written by a version without them (schema.sql).

Applying the schema to such a database records, per entity, that its roll-ups count no row yet
(``rollup_backfill``: not done, ``upto`` NULL); readers answer from the base tables meanwhile.
:func:`backfill` then walks each base table along its primary key, one transaction per chunk,
adding the chunk's rows to the roll-ups and moving ``upto`` past them, until every row counts.
Workers keep running: their triggers count the changes of rows at or below ``upto`` and leave
the others to the back-fill.

Why it is exact next to live writers: while an entity is not done, every writer's trigger takes
the entity's back-fill lock shared (``metrics_rollup_counted_upto``) and a chunk takes it
exclusively, so a chunk and a writer's delta for the same row never overlap. A writer whose
trigger ran first holds the lock until it commits; the chunk then reads the row as that writer
left it. A writer whose trigger runs after the chunk committed sees the new ``upto`` and moves
the row from the version the chunk counted. A chunk waits at most ``lock_wait`` for the lock (so
it never queues the writers behind it for long), then retries; a writer waits at most one chunk.

The whole back-fill holds the schema's advisory lock, so it runs once: a second one waits, then
finds everything done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from worker.schema import SCHEMA_LOCK_KEY

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 10_000

#: schema.sql's key for the per-entity back-fill locks (metrics_rollup_counted_upto).
BACKFILL_LOCK_KEY = 1919904877


@dataclass(frozen=True)
class _Entity:
    name: str
    table: str
    key: str
    move: str
    uptos: str  # the move's upto arguments after its arrays: this entity's NULL (all), others' '' (none)


# A base table's move feeds each of its roll-ups (schema.sql): a chunk counts one entity's only.
_ENTITIES = (
    _Entity("sessions", "session_metrics", "session_id", "session_rollup_move", "NULL"),
    _Entity("tool_calls", "tool_call_metrics", "tool_call_id", "tool_rollups_move", "NULL, ''"),
    _Entity("forwards", "forward_request_metrics", "forward_id", "forward_rollups_move", "NULL, ''"),
    _Entity("rounds", "round_metrics", "round_id", "round_rollups_move", "NULL, ''"),  # the cost roll-up
    _Entity("round_hourly", "round_metrics", "round_id", "round_rollups_move", "'', NULL"),
    _Entity("tool_latency", "tool_call_metrics", "tool_call_id", "tool_rollups_move", "'', NULL"),
    _Entity("forward_latency", "forward_request_metrics", "forward_id", "forward_rollups_move", "'', NULL"),
)


def _range(e: _Entity, upto: str | None, last: str | None) -> str:
    """The rows in (upto, last], an open bound being NULL; along the primary key's index.
    Names come from the constant table above, never from input."""
    conditions = ([f"{e.key} > %(upto)s"] if upto is not None else []) + (
        [f"{e.key} <= %(last)s"] if last is not None else []
    )
    return f"FROM {e.table} t" + (" WHERE " + " AND ".join(conditions) if conditions else "")


def pending(conn: psycopg.Connection[Any]) -> list[str]:
    """The entities whose roll-ups do not count every row yet."""
    return [
        row[0] for row in conn.execute("SELECT entity FROM rollup_backfill WHERE NOT done ORDER BY entity")
    ]


def backfill(
    conn: psycopg.Connection[Any],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    lock_wait: float = 0.2,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Count every base row not counted yet into the roll-ups (autocommit connection); the rows
    counted per entity. Safe next to running workers, and a no-op once done."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be at least 1, got {chunk_size}")
    if not conn.autocommit:
        raise ValueError("conn: the back-fill commits a chunk at a time; pass an autocommit connection")
    counted = {e.name: 0 for e in _ENTITIES}
    conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
    try:
        for e in _ENTITIES:
            while True:
                n, finished = _chunk(conn, e, chunk_size, lock_wait)
                counted[e.name] += n
                if progress and n:
                    progress(e.name, counted[e.name])
                if finished:
                    break
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
    return counted


def _chunk(conn: psycopg.Connection[Any], e: _Entity, chunk_size: int, lock_wait: float) -> tuple[int, bool]:
    """One chunk in one transaction: (rows counted, whether the entity is done)."""
    while True:
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{int(lock_wait * 1000)}ms'")
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (BACKFILL_LOCK_KEY, e.name))
                conn.execute("SET LOCAL lock_timeout = 0")
                row = conn.execute(
                    "SELECT done, upto FROM rollup_backfill WHERE entity = %s", (e.name,)
                ).fetchone()
                if row is None or row[0]:
                    return 0, True
                upto = row[1]
                found = conn.execute(
                    f"SELECT {e.key} {_range(e, upto, None)} ORDER BY {e.key} OFFSET %(offset)s LIMIT 1",
                    {"upto": upto, "offset": chunk_size - 1},
                ).fetchone()
                last = found[0] if found else None
                rows = _range(e, upto, last)
                _, n = conn.execute(
                    f"SELECT {e.move}(ARRAY(SELECT t {rows}), '{{}}', {e.uptos}), (SELECT count(*) {rows})",
                    {"upto": upto, "last": last},
                ).fetchone() or (None, 0)
                conn.execute(
                    "UPDATE rollup_backfill SET upto = COALESCE(%(last)s, upto), "
                    "done = %(last)s::text IS NULL WHERE entity = %(entity)s",
                    {"last": last, "entity": e.name},
                )
                log.debug("rollups backfill %s: %s rows up to %r", e.name, n, last)
                return n, last is None
        except psycopg.errors.LockNotAvailable:
            time.sleep(lock_wait / 4)  # writers hold it shared right now: let them through, retry
