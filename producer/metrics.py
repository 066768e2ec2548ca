"""The producer's own counters: a ``stats()`` dict, also Prometheus metrics when available.

Prometheus reads the counters at scrape time through a collector, so publishing never touches a
prometheus_client lock (a lock held by another thread at ``fork()`` would hang the child).
Metrics: ``metrics_producer_events_total{outcome=...}`` and ``metrics_producer_send_failures_total``,
summed over the live publishers of the process.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

#: Event outcomes. Every published event ends up sent, replayed (sent from the spool),
#: deduplicated (found already in Redis on a retry) or dropped_*; spooled counts events written
#: to disk (later replayed or dropped_oldest).
OUTCOMES = (
    "sent",
    "replayed",
    "spooled",
    "deduplicated",
    "dropped_oldest",
    "dropped_after_complete",
    "dropped_closed",
    "dropped_invalid",
    "dropped_spool_error",
)

_ALL: weakref.WeakSet[Counters] = weakref.WeakSet()


class Counters:
    """Thread-safe counters of one publisher."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(OUTCOMES, 0)
        self._values["send_failures"] = 0
        self._values["overflows"] = 0  # times a filling queue sent the sender to the spool
        _ALL.add(self)

    def add(self, name: str, amount: int = 1) -> None:
        if amount > 0:
            with self._lock:
                self._values[name] += amount

    def __getitem__(self, name: str) -> int:
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        return dict(self._values)  # one C-level copy: consistent enough, and lock-free

    def retire(self) -> None:
        """No longer reported (a forked child's copy of its parent's counters)."""
        _ALL.discard(self)


class _Collector:
    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        totals = dict.fromkeys((*OUTCOMES, "send_failures", "overflows"), 0)
        for counters in list(_ALL):
            for name, value in counters.snapshot().items():
                totals[name] += value
        events = CounterMetricFamily(
            "metrics_producer_events",
            "Telemetry events handled by this process's producer, by outcome",
            labels=["outcome"],
        )
        for name in OUTCOMES:
            events.add_metric([name], totals[name])
        yield events
        yield CounterMetricFamily(
            "metrics_producer_send_failures",
            "Sends to Redis that failed (the batch went to the spool)",
            value=totals["send_failures"],
        )


try:
    from prometheus_client import REGISTRY

    REGISTRY.register(_Collector())
except ImportError:  # pragma: no cover - prometheus_client is optional
    pass
