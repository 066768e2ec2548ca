"""What every maintenance run shares: one run at a time, chunked transactions, a record per run.

A run (reconcile, prune) spans many short transactions, so mutual exclusion is a *session*
advisory lock taken with ``pg_try_advisory_lock`` on the run's own connection: a second
scheduler or maintenance worker starting the same job meanwhile does not wait, it records a
skip and returns. The lock dies with the connection, so a killed run never blocks the next.
(Session locks need a session: point maintenance at PostgreSQL directly, or at a PgBouncer in
session mode, not transaction mode.)

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
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from contract.backoff import Backoff, full_jitter
from worker.errors import TransientError, translate
from worker.schema import require_schema

log = logging.getLogger(__name__)

T = TypeVar("T")

CURRENT_SCHEMA = "SELECT current_schema()"
TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
UNLOCK = "SELECT pg_advisory_unlock(%s)"
RECORD_RUN = """
INSERT INTO maintenance_runs (job, started_at, finished_at, details)
VALUES (%(job)s, %(started_at)s, %(finished_at)s, %(details)s)
"""

#: Attempts of one chunk when PostgreSQL says "retry" (deadlock victim, lock timeout, restart).
CHUNK_ATTEMPTS = 5


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


def in_transaction(conn: psycopg.Connection[Any], work: Callable[[psycopg.Cursor[Any]], T]) -> T:
    """Run ``work`` in one transaction, again from the start if PostgreSQL says the failure is
    transient (worker/errors.py); other errors propagate as the project's own exceptions."""
    backoff = Backoff(0.1, 5.0, full_jitter)  # 0-100 % of 0.1 s, 0.2 s, ... 5 s
    attempt = 0
    while True:
        attempt += 1
        try:
            with conn.transaction(), conn.cursor() as cur:
                return work(cur)
        except psycopg.Error as exc:
            error = translate(exc)
            if not isinstance(error, TransientError) or attempt >= CHUNK_ATTEMPTS:
                raise error from exc
            now = time.monotonic()
            delay = backoff.failed(now) - now
            log.debug("chunk failed (%s), attempt %d, retrying in %.2fs", error, attempt, delay)
            time.sleep(delay)
