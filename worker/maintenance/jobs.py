"""The maintenance jobs, wired to PostgreSQL and Redis from Settings.

``reconcile()`` and ``prune()`` take no arguments: they are what ``rq cron`` enqueues
(worker/maintenance/cron.py) and ``rq worker maintenance`` runs, configured from the environment
like every other process (DATABASE_URL, REDIS_URL, METRICS_STREAM, METRICS_RECONCILE_GRACE,
METRICS_RETENTION, METRICS_DEDUPE_WINDOW, METRICS_DEAD_LETTER_RETENTION; see worker/settings.py).
``run_reconcile`` / ``run_prune`` do the same for a given Settings (the CLI's one-shot commands).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

import psycopg

from contract.connect import Client, connect, describe
from contract.durations import format_duration
from worker.maintenance.prune import prune as prune_tables
from worker.maintenance.reconcile import read_hints
from worker.maintenance.reconcile import reconcile as reconcile_rows
from worker.maintenance.runs import run_exclusive, utcnow
from worker.maintenance.trims import trim_dead_letters, trim_hints
from worker.settings import Settings

log = logging.getLogger(__name__)

#: A redelivery can come this late at least (a worker outage); a shorter dedupe window is refused.
MIN_DEDUPE_WINDOW = timedelta(days=1)


def run_reconcile(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """One reconcile run (skipped if another holds the lock); what it did."""
    with contextlib.ExitStack() as stack, psycopg.connect(settings.database_url, autocommit=True) as conn:

        def body() -> dict[str, Any]:
            client = _data_redis(settings, stack)  # in the run: a Redis outage is recorded as its error
            at = now or utcnow()
            hints = read_hints(client, settings.keys, at)  # after the lock: the freshest hints
            return dict(reconcile_rows(conn, hints, now=at, grace=settings.reconcile_grace))

        return run_exclusive(conn, "reconcile", body)


def run_prune(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """One prune run with ``settings.retention`` as the age limit; what it did."""
    if settings.dedupe_window < MIN_DEDUPE_WINDOW:
        raise ValueError(
            f"METRICS_DEDUPE_WINDOW (--dedupe-window): {format_duration(settings.dedupe_window)} is "
            f"shorter than {format_duration(MIN_DEDUPE_WINDOW)}; "
            "a redelivered round.compressed or sync.mismatch would be counted twice. Use e.g. 14d"
        )
    with contextlib.ExitStack() as stack, psycopg.connect(settings.database_url, autocommit=True) as conn:

        def body() -> dict[str, Any]:
            at = now or utcnow()
            cutoff = at - settings.retention
            details: dict[str, Any] = {"cutoff": cutoff.isoformat()}
            client = _data_redis(settings, stack)
            # Sessions with a live heartbeat are kept however quiet; without the hints, no prune
            # (as no reconcile): a Redis outage must not read as "nobody is alive".
            live = read_hints(client, settings.keys, at).active
            details.update(
                prune_tables(conn, cutoff=cutoff, dedupe_before=at - settings.dedupe_window, live=live)
            )
            details["dead_letters"] = trim_dead_letters(
                client, settings.keys, at - settings.dead_letter_retention
            )
            details["hints"] = trim_hints(client, settings.keys, now=at, awaiting_before=cutoff)
            return details

        return run_exclusive(conn, "prune", body)


def _data_redis(settings: Settings, stack: contextlib.ExitStack) -> Client:
    """The pipeline's Redis (hints, dead letters): one server or a cluster, said in the log;
    closed with ``stack``."""
    client = connect(settings.redis_url, socket_timeout=30, socket_connect_timeout=5)
    stack.callback(client.close)
    log.info("maintenance: %s", describe(client))
    return client


def _ensure_logging() -> None:
    """Under ``rq worker`` only rq's own loggers have handlers; give ours the root's."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def reconcile() -> dict[str, Any]:
    """RQ job: reconcile stale rows, configured from the environment."""
    _ensure_logging()
    return run_reconcile(Settings.from_env())


def prune() -> dict[str, Any]:
    """RQ job: apply retention, configured from the environment."""
    _ensure_logging()
    return run_prune(Settings.from_env())
