"""One run of a scheduled job at a time, across schedulers and workers, each run recorded.

Reconcile, prune (worker/maintenance/) and the alerts (worker/alerts/job.py) run this way, from
their RQ job or a one-shot command alike. A run spans many short transactions, so mutual
exclusion is a *session* advisory lock taken with ``pg_try_advisory_lock`` on the run's own
connection: a second scheduler, maintenance worker or command starting the same job meanwhile
does not wait, it records a skip and returns. The lock dies with the connection, so a killed run
never blocks the next. (Session locks need a session: point maintenance at PostgreSQL directly,
or at a PgBouncer in session mode, not transaction mode.)

The key is derived from the job name and the connection's current schema, so deployments (or
tests) sharing one database under separate schemas do not skip each other's runs.

Every run, skipped or failed ones included, leaves one row in ``maintenance_runs`` and one
INFO log line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worker.schema import require_schema

log = logging.getLogger(__name__)

CURRENT_SCHEMA = "SELECT current_schema()"
TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
UNLOCK = "SELECT pg_advisory_unlock(%s)"
RECORD_RUN = """
INSERT INTO maintenance_runs (job, started_at, finished_at, details)
VALUES (%(job)s, %(started_at)s, %(finished_at)s, %(details)s)
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


def lock_key(job: str, schema: str) -> int:
    """The advisory lock key of ``job`` in ``schema``: a stable signed 64-bit hash."""
    digest = hashlib.blake2b(f"metrics-maintenance:{job}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def run_exclusive(
    conn: psycopg.Connection[Any], job: str, body: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run ``body`` unless another ``job`` run holds the lock; record the run either way.

    ``conn`` must be in autocommit mode (the lock outlives the body's transactions). Returns
    the body's details, or ``{"skipped": True}``. A failing body is recorded, then re-raised.
    """
    if not conn.autocommit:
        raise ValueError("run_exclusive needs an autocommit connection (the lock spans transactions)")
    require_schema(conn)  # else every statement fails on a missing table, with SQL and no fix
    started = utcnow()
    clock = time.monotonic()
    row = conn.execute(CURRENT_SCHEMA).fetchone()
    key = lock_key(job, str(row[0] if row else ""))
    locked = conn.execute(TRY_LOCK, (key,)).fetchone()
    if not (locked and locked[0]):
        details: dict[str, Any] = {"skipped": True}
        _record(conn, job, started, details)
        log.info("%s: skipped, another run holds the lock", job)
        return details
    try:
        try:
            details = body()
        except Exception as exc:
            failed = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            try:
                _record(conn, job, started, failed)
            except psycopg.Error:  # the connection itself may be what failed
                log.debug("%s: could not record the failed run", job, exc_info=True)
            log.error("%s: failed after %.3fs: %s", job, time.monotonic() - clock, failed["error"])
            raise
        details["seconds"] = round(time.monotonic() - clock, 3)
        _record(conn, job, started, details)
        log.info("%s: %s", job, " ".join(f"{k}={v}" for k, v in details.items()))
        return details
    finally:
        if not conn.closed:
            try:
                conn.execute(UNLOCK, (key,))
            except psycopg.Error:  # closing the connection releases it anyway
                log.debug("%s: unlock failed", job, exc_info=True)


def _record(conn: psycopg.Connection[Any], job: str, started: datetime, details: dict[str, Any]) -> None:
    conn.execute(
        RECORD_RUN, {"job": job, "started_at": started, "finished_at": utcnow(), "details": Jsonb(details)}
    )
