"""The Publisher: typed, non-blocking publish calls (producer/calls.py) into a bounded queue that
the sender thread drains; flush, close and what a fork needs.

A call checks its arguments, stamps the time, appends a tuple to the bounded in-memory queue and
returns: about 1-2 µs, no I/O, no lock on the common path, so asyncio code can call it from the
event loop. The sender thread (producer/sender.py) builds the JSON, the UUIDv7 event_id (from the
call's timestamp) and sends.
Transport problems never reach the caller: they show in :meth:`Publisher.stats` and the logs.

Nothing is dropped for a full queue. Past half of ``queue_size`` the sender spools instead of
sending and replays the spool in order (producer/sender.py), so the queue drains at the speed of
the disk. A call finding ``queue_size`` events queued still appends (the sender is in the middle
of one Redis round trip); only at twice that does it wait, for the sender's step in hand (a
spool write, or the round trip in flight), at most ``socket_timeout`` + 0.5 s, then appends
anyway. The only drop is the spool's disk bound (oldest first, counted). SIGKILL loses what is
in memory: at most twice ``queue_size`` plus ``batch_size`` events; the spool on disk survives.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import multiprocessing.util
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from typing import Any, Self

from producer.calls import TypedCalls
from producer.hints import HintWriter
from producer.lifecycle import ForwardScope, SessionScope
from producer.marker import Marker
from producer.metrics import Counters
from producer.sender import Sender
from producer.settings import ProducerSettings

log = logging.getLogger(__name__)


class Publisher(TypedCalls):
    """Publishes lifecycle events to Redis streams without ever blocking or raising into the agent
    (except ValueError for wrong arguments). Thread-safe; safe across ``os.fork()``.

    ``Publisher()`` reads the environment (ProducerSettings.from_env); pass settings or keyword
    overrides (``Publisher(redis_url=..., spool_dir=...)``) to choose.
    """

    def __init__(self, settings: ProducerSettings | None = None, **overrides: Any) -> None:
        if settings is None:
            settings = ProducerSettings.from_env(**overrides)
        elif overrides:
            settings = ProducerSettings.from_env(env={}, **{**settings.__dict__, **overrides})
        self.settings = settings
        self.keys = settings.keys
        self.counters = Counters()
        self.hints = HintWriter(self.keys, settings.heartbeat_interval, settings.heartbeat_ttl)
        self._completed: OrderedDict[str, bool] = OrderedDict()  # session_id -> late call warned
        self._closed = False
        self._state_lock = threading.Lock()
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._limit = settings.queue_size
        self._sender: Sender | None = None
        self._start_sender()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, "_after_fork_in_child"))
        multiprocessing.util.register_after_fork(self, Publisher._close_at_multiprocessing_exit)
        atexit.register(_call, ref, "_close_at_exit")

    # -- lifecycle helpers ------------------------------------------------------------------

    def session(self, model: str, session_id: str | None = None) -> SessionScope:
        """``with pub.session(model) as s:`` emits session.started, then session.completed with
        status error/cancelled if the block raised, awaiting_response if left awaiting."""
        return SessionScope(self, model, session_id)

    def forward(
        self,
        endpoint: str,
        model: str,
        is_stream: bool = False,
        forward_id: str | None = None,
        *,
        stream: bool | None = None,
    ) -> ForwardScope:
        """``with pub.forward(endpoint, model, is_stream=True) as f: f.complete(200, usage)``.
        ``is_stream`` is the contract's name (as in forward_started); ``stream=`` is the older one."""
        return ForwardScope(self, endpoint, model, is_stream if stream is None else stream, forward_id)

    # -- queue ------------------------------------------------------------------------------

    def _put(self, item: tuple[Any, ...]) -> None:
        queue = self._queue
        if len(queue) >= self._limit:
            if self._closed:
                self._dropped_closed()
                return
            self._make_room()
        queue.append(item)
        if not self._wake.is_set():
            self._wake_sender()

    def _wake_sender(self) -> None:
        if self._sender is None:
            self._start_sender()
        self._wake.set()

    def _start_sender(self) -> None:
        with self._state_lock:
            if self._sender is None and not self._closed:
                sender = Sender(self.settings, self._queue, self._wake, self.hints, self.counters)
                sender.start()
                self._sender = sender

    def _dropped_closed(self) -> None:
        first = self.counters["dropped_closed"] == 0
        self.counters.add("dropped_closed")
        if first:
            log.warning("metrics producer: event published after close(); dropped (counted)")

    def _make_room(self) -> None:
        """The queue is at its size: the sender is spooling it or is in one Redis round trip, and
        will be past it soon. Wait only at twice the size, and never longer than one step."""
        sender = self._sender
        if sender is None or not sender.alive:
            self._wake_sender()
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

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event published before this call is in Redis. False on timeout (the
        events are not lost: they stay queued or spooled). Blocks: not for the event loop."""
        if self._closed or (self._sender is None and not self._queue):
            return not self._queue
        marker = Marker()
        self._queue.append(marker)
        self._wake_sender()
        if marker.done.wait(timeout):
            return marker.delivered
        marker.cancelled = True  # else timed-out flushes would pile up, parked, for the whole outage
        return False

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued (spooling what cannot be sent within ``timeout``), then stop. True
        when everything reached Redis. Later calls are dropped (counted in dropped_closed)."""
        with self._state_lock:
            if self._closed:
                return False
            self._closed = True
            self._limit = -1
            sender = self._sender
        if sender is None:
            return True
        now = time.monotonic()
        sender.stop_at = now + timeout
        sender.spill_at = now + max(timeout - min(timeout / 2, self.settings.socket_timeout), 0)
        marker = Marker(stop=True)
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout) and marker.delivered

    async def aflush(self, timeout: float = 5.0) -> bool:
        """:meth:`flush` for asyncio code (runs in a worker thread)."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 5.0) -> bool:
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_at_exit(self) -> None:
        if not self._closed:
            self.close(self.settings.exit_timeout)

    def _after_fork_in_child(self) -> None:
        """A child starts empty: its own queue, sender (started at its first call), spool
        directory and hints. The parent's queued events stay the parent's to send."""
        if self._sender is not None:
            self._sender.abandon()
        self._sender = None
        self._state_lock = threading.Lock()
        self._queue = deque()
        self._wake = threading.Event()
        self.counters.retire()
        self.counters = Counters()
        self.hints.reset()

    def _close_at_multiprocessing_exit(self) -> None:
        """In a multiprocessing child (it leaves through os._exit, not atexit): close at its end.
        Registered from its after-fork hook, which runs after multiprocessing clears the finalizers."""
        multiprocessing.util.Finalize(
            self, _call, args=(weakref.ref(self), "_close_at_exit"), exitpriority=10
        )

    @property
    def queued(self) -> int:
        """Events (and flush marks) in memory, not yet taken by the sender."""
        return len(self._queue)

    def stats(self) -> dict[str, Any]:
        """Counters (see producer.metrics.OUTCOMES) and the current state."""
        sender = self._sender
        return {
            **self.counters.snapshot(),
            "queued": len(self._queue),
            "spool_events": sender.spool_events if sender else 0,
            "spool_bytes": sender.spool_bytes if sender else 0,
            "mode": sender.mode if sender else "idle",
            "open_sessions": self.hints.open_sessions,
        }


def _call(ref: weakref.ref[Publisher], method: str) -> None:
    publisher = ref()
    if publisher is not None:
        getattr(publisher, method)()
