"""Prometheus metrics of the worker (served with --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "metrics_worker_events_applied_total", "Events applied (committed), by type", ["type"]
)
DEAD_LETTERED = Counter(
    "metrics_worker_dead_lettered_total", "Entries moved to the dead-letter stream", ["reason"]
)
RETRIES = Counter("metrics_worker_retries_total", "Batch applies retried after a transient failure", ["kind"])
BATCH_SIZE = Histogram(
    "metrics_worker_batch_size", "Entries per batch", buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000)
)
APPLY_SECONDS = Histogram(
    "metrics_worker_apply_seconds",
    "Time to apply and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge("metrics_worker_consumer_lag", "Entries not yet delivered to the group", ["stream"])
PENDING = Gauge("metrics_worker_pending", "Entries delivered to the group but not acknowledged", ["stream"])
