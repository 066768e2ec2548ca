"""The producer's own counters: a ``stats()`` dict, and Prometheus counters when available."""

from __future__ import annotations

import threading
from typing import Any

#: Event outcomes. Every published event ends up sent, replayed (sent from the spool) or dropped_*;
#: spooled counts events written to disk (later replayed or dropped_oldest).
OUTCOMES = (
    "sent",
    "replayed",
    "spooled",
    "deduplicated",
    "dropped_oldest",
    "dropped_queue_full",
    "dropped_after_complete",
    "dropped_closed",
    "dropped_invalid",
    "dropped_spool_error",
)

try:
    from prometheus_client import Counter

    _EVENTS: Any = Counter(
        "metrics_producer_events",
        "Telemetry events handled by this process's producer, by outcome",
        ["outcome"],
    )
    _FAILURES: Any = Counter(
        "metrics_producer_send_failures", "Sends to Redis that failed (the batch went to the spool)"
    )
except ImportError:  # pragma: no cover - prometheus_client is optional
    _EVENTS = _FAILURES = None


class Counters:
    """Thread-safe counters; each increment is mirrored to Prometheus."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(OUTCOMES, 0)
        self._values["send_failures"] = 0

    def add(self, name: str, amount: int = 1) -> None:
        if amount <= 0:
            return
        with self._lock:
            self._values[name] += amount
        if name == "send_failures":
            if _FAILURES is not None:
                _FAILURES.inc(amount)
        elif _EVENTS is not None:
            _EVENTS.labels(outcome=name).inc(amount)

    def __getitem__(self, name: str) -> int:
        return self._values[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)
