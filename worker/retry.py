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
