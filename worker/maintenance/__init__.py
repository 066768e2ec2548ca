"""Maintenance: reconcile what dead agents left running, prune old data, forget sessions on
request; the RQ jobs, their cron schedule and the one-shot ``metrics-worker reconcile|prune`` commands."""
