"""The queue from the agent's threads to the sender thread: event items, with flush marks between.

Publishing threads append items (producer/calls.py: ``(WireType, time_ns, event_id, occurred_at,
*values)``) and :class:`Mark` objects to one ``deque`` (producer/outbox.py); the sender thread
alone takes from its left (producer/sender.py). A mark is resolved once everything put before it
is in Redis (``delivered`` True), or can no longer get there before the sender stops (False).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from producer.wire import Item


@dataclass(eq=False)
class Mark:
    """Put in the queue by flush() or, with ``stop``, by close(); resolved when everything
    before it is handled."""

    stop: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    delivered: bool = False
    position: int = 0  # parked: the spool's count of appended events when it arrived
    cancelled: bool = False  # its flush() gave up waiting: nobody will look at it

    def resolve(self, delivered: bool) -> None:
        self.delivered = delivered
        self.done.set()


def take(queue: deque[Any], limit: int) -> tuple[list[Item], Mark | None]:
    """Up to ``limit`` items from the left of the queue, stopping at the first live mark (a
    cancelled one is thrown away: many pile up when an agent flushes in a loop during an outage)."""
    items: list[Item] = []
    while queue and len(items) < limit:
        item = queue.popleft()
        if type(item) is Mark:
            if item.cancelled:
                continue
            return items, item
        items.append(item)
    return items, None


class Parked:
    """Flush marks that came while events went to the spool: each waits until the spool has
    delivered what was appended before it (its ``position``)."""

    def __init__(self) -> None:
        self._marks: list[Mark] = []

    def __len__(self) -> int:
        return len(self._marks)

    def park(self, mark: Mark, position: int) -> None:
        mark.position = position
        self._marks.append(mark)

    def resolve(self, up: bool, consumed: int) -> None:
        """Resolve the marks the spool has delivered past (``consumed``), or all once ``up``."""
        waiting = []
        for mark in self._marks:
            if mark.cancelled:
                continue
            if up or consumed >= mark.position:
                mark.resolve(True)
            else:
                waiting.append(mark)
        self._marks = waiting

    def fail_all(self) -> None:
        """The sender stops with these undelivered (they stay in the spool for the next publisher)."""
        for mark in self._marks:
            mark.resolve(False)
        self._marks = []
