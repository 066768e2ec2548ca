"""The Publisher: the object an agent holds, from construction through fork to close.

Its typed calls (producer/calls.py) check their arguments, stamp the time and put a tuple into the
outbox (producer/outbox.py): about 1-2 µs, no I/O, no lock on the common path, so asyncio code can
call them from the event loop. The outbox's sender thread (producer/sender.py) builds the JSON,
the UUIDv7 event_id (from the call's timestamp) and sends, spooling to disk while Redis is away.
Transport problems never reach the caller: they show in :meth:`Publisher.stats` and the logs.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing.util
import os
import weakref
from typing import Any, Self

from producer.calls import EventCalls
from producer.hints import HintWriter
from producer.metrics import Counters
from producer.outbox import Outbox
from producer.settings import ProducerSettings


class Publisher(EventCalls):
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
        counters = Counters()
        hints = HintWriter(self.keys, settings.heartbeat_interval, settings.heartbeat_ttl)
        self._outbox = Outbox(settings, hints, counters)
        super().__init__(self._outbox, hints, counters, settings.remember_completed)
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, "_after_fork_in_child"))
        multiprocessing.util.register_after_fork(self, Publisher._close_at_multiprocessing_exit)
        atexit.register(_call, ref, "_close_at_exit")

    # -- flush, close, fork -----------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event published before this call is in Redis. False on timeout (the
        events are not lost: they stay queued or spooled). Blocks: not for the event loop."""
        return self._outbox.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued (spooling what cannot be sent within ``timeout``), then stop. True
        when everything reached Redis. Later calls are dropped (counted in dropped_closed)."""
        return self._outbox.close(timeout)

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
        if not self._outbox.closed:
            self.close(self.settings.exit_timeout)

    def _after_fork_in_child(self) -> None:
        """A child starts empty: its own queue, sender (started at its first call), spool
        directory, counters and hints. The parent's queued events stay the parent's to send."""
        super()._after_fork_in_child()
        self.counters.retire()
        self.counters = Counters()
        self._outbox.forked(self.counters)
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
        return self._outbox.queued

    def stats(self) -> dict[str, Any]:
        """Counters (see producer.metrics.OUTCOMES) and the current state."""
        return {**self.counters.snapshot(), **self._outbox.stats(), "open_sessions": self.hints.open_sessions}


def _call(ref: weakref.ref[Publisher], method: str) -> None:
    publisher = ref()
    if publisher is not None:
        getattr(publisher, method)()
