"""The flush and close marks that travel in the publisher's queue between events."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class Marker:
    """Put in the queue by flush() / close(); resolved when everything before it is handled."""

    stop: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    delivered: bool = False
    position: int = 0
    cancelled: bool = False  # its flush() gave up waiting: nobody will look at it

    def resolve(self, delivered: bool) -> None:
        self.delivered = delivered
        self.done.set()
