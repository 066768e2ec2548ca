"""Waiting out a server that failed: pure retry policies that take ``now``, for both sides.

:class:`Backoff` says when to try again, :class:`Patience` when to stop trying. Neither sleeps nor
reads a clock, so a test drives them with the times it chooses (psycopg_pool's backoff objects).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

#: The jitter's own generator: a library's background threads (the producer's sender, the worker)
#: leave the random module's shared state to the application that embeds them.
_JITTER = random.Random()


def half_jitter() -> float:
    """50-100 % of the delay: attempts spread, none much earlier than planned (the producer)."""
    return _JITTER.uniform(0.5, 1.0)


def full_jitter() -> float:
    """0-100 % of the delay: many workers that failed together retry spread over the whole
    delay, not in a storm at its end ("full jitter")."""
    return _JITTER.uniform(0.0, 1.0)


class Backoff:
    """When to try again: the delay doubles from ``initial`` to ``maximum`` with each failure,
    scaled by ``jitter()`` (a fraction of it), until :meth:`reset`."""

    def __init__(self, initial: float, maximum: float, jitter: Callable[[], float] = half_jitter) -> None:
        self.initial = initial
        self.maximum = maximum
        self._jitter = jitter
        self._delay = initial

    def failed(self, now: float) -> float:
        """The time of the next attempt after a failure at ``now``."""
        at = now + self._delay * self._jitter()
        self._delay = min(self._delay * 2, self.maximum)
        return at

    def reset(self) -> None:
        self._delay = self.initial


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
