"""One run of the alerts: the rules file read now, every rule evaluated and its notifications sent.

What the maintenance job does each minute (worker/maintenance/jobs.py ``alerts``) and what
``metrics-worker alerts run`` does once, for a system cron: the same run, under the same
one-run-at-a-time lock (worker/runs.py), recorded in ``maintenance_runs`` as ``alerts``, against
the same state, so the two may be mixed and neither sends a notification the other sent.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from typing import Any

from contract.connect import Client, connect, describe
from worker.alerts.cycle import evaluate
from worker.alerts.rules import load_rules
from worker.database import connect as connect_database
from worker.runs import run_exclusive, utcnow
from worker.settings import AlertSettings
from worker.status import PipelineStatus, read_status

log = logging.getLogger(__name__)


def run_alerts(
    settings: AlertSettings, *, now: datetime | None = None, one_shot: bool = False
) -> dict[str, Any]:
    """One evaluation of every alert rule, notifications sent (skipped if another holds the lock);
    what it did. The rules file is read in the run, each time (an edit counts from the next run):
    a bad one fails the run in one line, recorded in maintenance_runs. ``one_shot``: a command's
    run, whose start-up lines are DEBUG (its answer is all it prints)."""
    if not settings.alerts_file:
        raise ValueError("METRICS_ALERTS_FILE: not set; name the rules file (e.g. examples/alerts.toml)")
    path = settings.alerts_file
    with (
        contextlib.ExitStack() as stack,
        connect_database(settings.database_url, settings.connect_timeout) as conn,
    ):
        clients: list[Client] = []

        def pipeline() -> PipelineStatus:  # read once, and only when a rule watches the pipeline
            if not clients:
                timeout = settings.connect_timeout.total_seconds()
                client = connect(settings.redis_url, socket_timeout=30, socket_connect_timeout=timeout)
                stack.callback(client.close)
                log.log(logging.DEBUG if one_shot else logging.INFO, "alerts: %s", describe(client))
                clients.append(client)
            return read_status(clients[0], settings.keys, settings.group, latest=0)

        def body() -> dict[str, Any]:
            report = evaluate(conn, load_rules(path), pipeline, now or utcnow())
            return report.details()

        return run_exclusive(conn, "alerts", body)
