"""Deprecated path, kept for one release: RQ jobs already enqueued or scheduled by a deployed
``rq cron worker.cron_config`` name ``worker.jobs.reconcile`` / ``worker.jobs.prune``.
The jobs live in :mod:`worker.maintenance.jobs`; remove this module in 0.3."""

from __future__ import annotations

from worker.maintenance.jobs import prune, reconcile

__all__ = ["prune", "reconcile"]
