"""Retry policy in one place: which failures are worth retrying, and how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Exponential backoff with full jitter, capped ("retry storm"-safe across many workers)."""

    base: float = 0.05
    cap: float = 5.0
    attempt: int = 0

    def next_delay(self) -> float:
        self.attempt += 1
        return random.uniform(0, min(self.cap, self.base * 2 ** min(self.attempt, 16)))

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class Patience:
    """How long to keep retrying a server that does not answer: ``limit`` seconds of failures in
    a row (None: for ever, what a long-running worker does; a burst run has a limit)."""

    limit: float | None = None
    since: float | None = None

    def exhausted(self, now: float) -> float | None:
        """Note a failure at ``now``: the seconds failures have lasted, once that is the limit."""
        self.since = now if self.since is None else self.since
        lasted = now - self.since
        return lasted if self.limit is not None and lasted >= self.limit else None

    def reset(self) -> None:
        self.since = None
