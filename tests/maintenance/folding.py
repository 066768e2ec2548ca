"""Helpers of the fold tests (test_fold.py, test_fold_tools.py, test_fold_forwards.py)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import psycopg

from tests.engine.histories import T0
from worker.maintenance import fold
from worker.maintenance.fold import fold_target

#: A fold run after the histories' days (T0 is 23:59:50 on 2026-02-10, events reach into the 11th),
#: past the grace: both are folded.
AFTER = T0 + timedelta(days=1, hours=2)


def watermark(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT folded_upto::text FROM latency_fold").fetchone()
    assert row is not None
    return str(row[0])


def waiting(conn: psycopg.Connection[Any], pid: int) -> bool:
    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def wait_until_blocked(watcher: psycopg.Connection[Any], pid: int, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 10
    while not waiting(watcher, pid):
        assert thread.is_alive() and time.monotonic() < deadline, "never waited on the fold's lock"
        time.sleep(0.02)


def apply_during_fold(
    applier: psycopg.Connection[Any],
    folder: psycopg.Connection[Any],
    watcher: psycopg.Connection[Any],
    statement: str,
    days: int = fold.DEFAULT_CHUNK_DAYS,
) -> None:
    """Hold a fold's chunk (of ``days``) open (fold_latency's statements, up to its commit), run
    ``statement`` on ``applier`` meanwhile, and return once it waited on the fold's lock and then,
    the fold committed, went through."""
    params = {"target": fold_target(AFTER), "days": days}
    with folder.transaction():
        folder.execute(fold.LOCK)
        since, upto = folder.execute(fold.CLEAR, params).fetchone() or (None, None)
        folder.execute(fold.FOLD, {"since": since, "upto": upto})
        folder.execute(fold.MONTHS_CLEAR)
        folder.execute(fold.MONTHS)
        thread = threading.Thread(target=applier.execute, args=(statement,))
        thread.start()
        wait_until_blocked(watcher, applier.info.backend_pid, thread)
    thread.join(10)
    assert not thread.is_alive()
