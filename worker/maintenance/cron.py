"""The ``rq cron`` configuration: reconcile every minute, prune daily, the latency fold hourly, alerts
every minute, on the maintenance queue.

Run one scheduler (more are safe: a duplicate run skips on the advisory lock) and one or more
maintenance workers, with the same environment as the metrics workers::

    rq cron worker.maintenance.cron --url "$(metrics-worker scheduler-url)"
    rq worker maintenance --url "$(metrics-worker scheduler-url)"

``metrics-worker scheduler-url`` prints METRICS_SCHEDULER_REDIS_URL, else REDIS_URL unless that is a
Redis Cluster, which RQ does not support (worker/maintenance/scheduler.py).

Variables read here when the scheduler loads this module:
METRICS_MAINTENANCE_QUEUE (default ``maintenance``), METRICS_RECONCILE_CRON (default every
minute), METRICS_PRUNE_CRON (default 03:17 daily; cron fields are the scheduler host's local
time), METRICS_FOLD_CRON (default hourly at :07; a run with nothing due takes no lock), and
METRICS_ALERTS_FILE with METRICS_ALERTS_CRON (default every minute): the alerts job is scheduled
only when a rules file is named. The jobs themselves read the worker settings
(worker/maintenance/jobs.py).
"""

from __future__ import annotations

import os

from rq import cron

from worker.maintenance import jobs

QUEUE = os.environ.get("METRICS_MAINTENANCE_QUEUE") or "maintenance"
RECONCILE_CRON = os.environ.get("METRICS_RECONCILE_CRON") or "* * * * *"
PRUNE_CRON = os.environ.get("METRICS_PRUNE_CRON") or "17 3 * * *"
FOLD_CRON = os.environ.get("METRICS_FOLD_CRON") or "7 * * * *"
ALERTS_CRON = os.environ.get("METRICS_ALERTS_CRON") or "* * * * *"

# A reconcile that could not start within two minutes is dropped: the next one is queued anyway.
cron.register(
    jobs.reconcile,
    queue_name=QUEUE,
    cron=RECONCILE_CRON,
    job_timeout=300,
    ttl=120,
    result_ttl=3600,
    failure_ttl=7 * 86400,
)
cron.register(
    jobs.prune,
    queue_name=QUEUE,
    cron=PRUNE_CRON,
    job_timeout=6 * 3600,
    ttl=12 * 3600,
    result_ttl=7 * 86400,
    failure_ttl=30 * 86400,
)
# A fold that could not start within the hour is dropped: the next one folds the same days.
cron.register(
    jobs.fold,
    queue_name=QUEUE,
    cron=FOLD_CRON,
    job_timeout=3600,
    ttl=3000,
    result_ttl=7 * 86400,
    failure_ttl=30 * 86400,
)

# An evaluation that could not start within a minute is dropped: the next one is queued anyway.
if os.environ.get("METRICS_ALERTS_FILE"):
    cron.register(
        jobs.alerts,
        queue_name=QUEUE,
        cron=ALERTS_CRON,
        job_timeout=120,
        ttl=60,
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )
