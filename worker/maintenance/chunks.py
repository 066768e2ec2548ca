"""A maintenance run's work in short transactions, each tried again when PostgreSQL says "retry".

Reconcile, prune and forget touch many rows next to running workers; each does it a bounded chunk
per transaction (``in_transaction``), so no lock is held for long and a deadlock victim or a
restarted server costs one chunk, tried again with backoff (contract/backoff.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from contract.backoff import Backoff, full_jitter
from worker.errors import TransientError, translate

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of one chunk when PostgreSQL says "retry" (deadlock victim, lock timeout, restart).
CHUNK_ATTEMPTS = 5


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
