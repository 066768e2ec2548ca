"""The Publisher's outbox: a bounded in-memory queue, drained by the sender thread it starts.

Nothing is dropped for a full queue. Past half of ``queue_size`` the sender spools instead of
sending and replays the spool in order (producer/sender.py), so the queue drains at the speed of
the disk. A call finding ``queue_size`` events queued still appends (the sender is in the middle
of one Redis round trip); only at twice that does it wait, for the sender's step in hand (a
spool write, or the round trip in flight), at most ``socket_timeout`` + 0.5 s, then appends
anyway. The only drop is the spool's disk bound (oldest first, counted). SIGKILL loses what is
in memory: at most twice ``queue_size`` plus ``batch_size`` events; the spool on disk survives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from producer.handoff import Mark
from producer.hints import HintWriter
from producer.metrics import Counters
from producer.sender import Sender
from producer.settings import ProducerSettings
from producer.wire import Item

log = logging.getLogger(__name__)


class Outbox:
    """Where the typed calls put their items (producer/calls.py's Sink). Thread-safe: any
    thread may put; flush and close block, so they are not for an event loop."""

    def __init__(self, settings: ProducerSettings, hints: HintWriter, counters: Counters) -> None:
        self.settings = settings
        self._hints = hints
        self._counters = counters
        self.closed = False
        self._state_lock = threading.Lock()
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._limit = settings.queue_size
        self._sender: Sender | None = None
        self._start_sender()

    @property
    def queued(self) -> int:
        """Events (and flush marks) in memory, not yet taken by the sender."""
        return len(self._queue)

    def put(self, item: Item) -> None:
        queue = self._queue
        if len(queue) >= self._limit:
            if self.closed:
                self._dropped_closed()
                return
            self._make_room()
        queue.append(item)
        if not self._wake.is_set():
            self.wake()

    def wake(self) -> None:
        """Have the sender look now (new items, or hints to send), starting it if need be."""
        if self._sender is None:
            self._start_sender()
        self._wake.set()

    def _start_sender(self) -> None:
        with self._state_lock:
            if self._sender is None and not self.closed:
                sender = Sender(self.settings, self._queue, self._wake, self._hints, self._counters)
                sender.start()
                self._sender = sender

    def _dropped_closed(self) -> None:
        first = self._counters["dropped_closed"] == 0
        self._counters.add("dropped_closed")
        if first:
            log.warning("metrics producer: event published after close(); dropped (counted)")

    def _make_room(self) -> None:
        """The queue is at its size: the sender is spooling it or is in one Redis round trip, and
        will be past it soon. Wait only at twice the size, and never longer than one step."""
        sender = self._sender
        if sender is None or not sender.alive:
            self.wake()
            return
        cap = 2 * self.settings.queue_size
        if len(self._queue) < cap:
            self._wake.set()
            return
        sender.outrun = True
        deadline = time.monotonic() + self.settings.socket_timeout + 0.5
        while len(self._queue) >= cap and sender.alive and time.monotonic() < deadline:
            sender.progress.clear()
            self._wake.set()
            sender.progress.wait(0.05)

    # -- flush, close, fork -----------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until every item put before this call is in Redis; False on timeout."""
        if self.closed or (self._sender is None and not self._queue):
            return not self._queue
        mark = Mark()
        self._queue.append(mark)
        self.wake()
        if mark.done.wait(timeout):
            return mark.delivered
        mark.cancelled = True  # else timed-out flushes would pile up, parked, for the whole outage
        return False

    def close(self, timeout: float) -> bool:
        """Send what is queued (spooling what cannot be sent within ``timeout``), then stop the
        sender. True when everything reached Redis; False also when already closed."""
        with self._state_lock:
            if self.closed:
                return False
            self.closed = True
            self._limit = -1
            sender = self._sender
        if sender is None:
            return True
        now = time.monotonic()
        sender.stop_at = now + timeout
        sender.spill_at = now + max(timeout - min(timeout / 2, self.settings.socket_timeout), 0)
        mark = Mark(stop=True)
        self._queue.append(mark)
        self._wake.set()
        return mark.done.wait(timeout) and mark.delivered

    def forked(self, counters: Counters) -> None:
        """In a forked child: start empty, with its own queue and sender (started at its first
        put) counting into ``counters``. The parent's queued events stay the parent's to send."""
        if self._sender is not None:
            self._sender.abandon()
        self._sender = None
        self._counters = counters
        self._state_lock = threading.Lock()
        self._queue = deque()
        self._wake = threading.Event()

    def stats(self) -> dict[str, Any]:
        sender = self._sender
        spool_events, spool_bytes = sender.spooled() if sender else (0, 0)
        return {
            "queued": len(self._queue),
            "spool_events": spool_events,
            "spool_bytes": spool_bytes,
            "mode": sender.mode if sender else "idle",
        }
