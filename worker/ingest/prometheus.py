"""The Worker's Prometheus metrics (served with --metrics-port), kept by an Observer of its batches."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram

from worker.ingest.observer import Finished

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


class Prometheus:
    """An Observer (worker/ingest/observer.py) that counts into the process's default registry."""

    def finished(self, batch: Finished) -> None:
        for kind, n in Tally(event.type for event in batch.applied).items():
            EVENTS_APPLIED.labels(kind).inc(n)
        for letter in batch.letters:
            DEAD_LETTERED.labels(letter.reason.split(":", 1)[0]).inc()
        BATCH_SIZE.observe(batch.entries)
        APPLY_SECONDS.observe(batch.seconds)

    def retrying(self, kind: str) -> None:
        RETRIES.labels(kind).inc()

    def backlog(self, stream: str, undelivered: int, pending: int) -> None:
        LAG.labels(stream).set(undelivered)
        PENDING.labels(stream).set(pending)
