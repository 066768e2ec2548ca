"""Deprecated path, kept for one release: a deployed ``rq cron worker.cron_config`` still starts.
The schedule lives in :mod:`worker.maintenance.cron`; remove this module in 0.3."""

from __future__ import annotations

import worker.maintenance.cron  # noqa: F401  (importing it registers the jobs with rq's cron)
