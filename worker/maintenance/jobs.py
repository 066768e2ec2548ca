"""The maintenance jobs, wired to PostgreSQL and Redis from their settings.

``reconcile()`` and ``prune()`` take no arguments: they are what ``rq cron`` enqueues
(worker/maintenance/cron.py) and ``rq worker maintenance`` runs, configured from the environment
like every other process (DATABASE_URL, REDIS_URL, METRICS_STREAM, METRICS_RECONCILE_GRACE,
METRICS_RETENTION, METRICS_DEDUPE_WINDOW, METRICS_DEAD_LETTER_RETENTION; see worker/settings.py).
``run_reconcile`` / ``run_prune`` do the same for given settings (the CLI's one-shot commands);
``run_forget`` is the CLI's forget (on request, never scheduled). ``fold()`` / ``run_fold`` fold
the past days' hourly latency histograms into the daily ones (worker/maintenance/fold.py).
``alerts()`` evaluates the rules of METRICS_ALERTS_FILE and sends what they say (worker/alerts/job.py,
which ``metrics-worker alerts run`` runs too).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from contract.connect import Client, connect, describe
from worker.alerts.job import run_alerts
from worker.database import connect as connect_database
from worker.maintenance.fold import fold_latency
from worker.maintenance.forget import Forgotten, forget_sessions, sessions_of_users
from worker.maintenance.prune import prune as prune_tables
from worker.maintenance.reconcile import read_hints
from worker.maintenance.reconcile import reconcile as reconcile_rows
from worker.maintenance.trims import trim_dead_letters, trim_hints
from worker.runs import run_exclusive, utcnow
from worker.schema import require_schema
from worker.settings import AlertSettings, Connections, PruneSettings, ReconcileSettings

log = logging.getLogger(__name__)


def run_reconcile(
    settings: ReconcileSettings, *, now: datetime | None = None, one_shot: bool = False
) -> dict[str, Any]:
    """One reconcile run (skipped if another holds the lock); what it did. ``one_shot``: a
    command's run, whose start-up lines are DEBUG (its answer is all it prints)."""
    with (
        contextlib.ExitStack() as stack,
        connect_database(settings.database_url, settings.connect_timeout) as conn,
    ):

        def body() -> dict[str, Any]:
            client = _data_redis(
                settings, stack, one_shot
            )  # in the run: a Redis outage is recorded as its error
            at = now or utcnow()
            hints = read_hints(client, settings.keys, at)  # after the lock: the freshest hints
            return dict(reconcile_rows(conn, hints, now=at, grace=settings.reconcile_grace))

        return run_exclusive(conn, "reconcile", body)


def run_prune(
    settings: PruneSettings, *, now: datetime | None = None, one_shot: bool = False
) -> dict[str, Any]:
    """One prune run with ``settings.retention`` as the age limit; what it did. ``one_shot`` as
    for run_reconcile. The settings were checked when they were made (worker/settings.py)."""
    with (
        contextlib.ExitStack() as stack,
        connect_database(settings.database_url, settings.connect_timeout) as conn,
    ):

        def body() -> dict[str, Any]:
            at = now or utcnow()
            cutoff = at - settings.retention
            details: dict[str, Any] = {"cutoff": cutoff.isoformat()}
            client = _data_redis(settings, stack, one_shot)
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


def run_fold(settings: Connections, *, now: datetime | None = None) -> dict[str, Any]:
    """One fold run (skipped if another holds the lock); what it did."""
    with connect_database(settings.database_url, settings.connect_timeout) as conn:
        return run_exclusive(conn, "fold", lambda: fold_latency(conn, now=now))


def run_forget(settings: Connections, session_ids: Iterable[str], user_ids: Iterable[str] = ()) -> Forgotten:
    """Forget ``session_ids`` and the sessions of ``user_ids`` (worker/maintenance/forget.py): their
    rows, roll-up counts and hints; what went. No lock: it runs next to workers and the other jobs,
    waiting only on the rows."""
    with (
        contextlib.ExitStack() as stack,
        connect_database(settings.database_url, settings.connect_timeout) as conn,
    ):
        require_schema(conn)  # else the first statement fails on a missing table, with SQL and no fix
        client = _data_redis(settings, stack, one_shot=True)
        ids = [*session_ids, *sessions_of_users(conn, user_ids)]
        return forget_sessions(conn, client, settings.keys, ids)


def _data_redis(settings: Connections, stack: contextlib.ExitStack, one_shot: bool) -> Client:
    """The pipeline's Redis (hints, dead letters): one server or a cluster, said in the log (at
    DEBUG for a one-shot command); closed with ``stack``."""
    timeout = settings.connect_timeout.total_seconds()
    client = connect(settings.redis_url, socket_timeout=30, socket_connect_timeout=timeout)
    stack.callback(client.close)
    log.log(logging.DEBUG if one_shot else logging.INFO, "maintenance: %s", describe(client))
    return client


def _ensure_logging() -> None:
    """Under ``rq worker`` only rq's own loggers have handlers; give ours the root's."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def reconcile() -> dict[str, Any]:
    """RQ job: reconcile stale rows, configured from the environment."""
    _ensure_logging()
    return run_reconcile(ReconcileSettings.from_env())


def prune() -> dict[str, Any]:
    """RQ job: apply retention, configured from the environment."""
    _ensure_logging()
    return run_prune(PruneSettings.from_env())


def fold() -> dict[str, Any]:
    """RQ job: fold the past days' latency histograms, configured from the environment."""
    _ensure_logging()
    return run_fold(Connections.from_env())


def alerts() -> dict[str, Any]:
    """RQ job: evaluate the alert rules of METRICS_ALERTS_FILE, configured from the environment."""
    _ensure_logging()
    return run_alerts(AlertSettings.from_env())
