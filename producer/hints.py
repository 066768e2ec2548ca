"""Liveness hints for the reconcile job: heartbeats of open sessions, awaiting marks.

Callers record changes (cheap, under a lock); the sender thread writes them to Redis while it
is connected: new and removed entries at once, and every open session's heartbeat (expiry =
now + ttl, in ``Keys.active_sessions``) every ``interval``. A failed write is retried. The
protocol it follows is the contract's, written down for every language in contract/liveness.py.
"""

from __future__ import annotations

import threading
import time

import redis
from redis.exceptions import RedisClusterException

from contract.connect import Client
from contract.keys import Keys


class HintWriter:
    """Records this process's open and awaiting sessions and writes them to Redis (the reconcile
    job reads them back as a ``worker.maintenance.reconcile.HintSnapshot``)."""

    def __init__(self, keys: Keys, interval: float, ttl: float) -> None:
        self.keys = keys
        self.interval = interval
        self.ttl = ttl
        self.reset()

    def reset(self) -> None:
        """Forget everything (a forked child starts without its parent's sessions)."""
        self._lock = threading.Lock()
        self._open: dict[str, None] = {}
        self._awaiting: dict[str, float] = {}
        self._new_open: set[str] = set()
        self._new_awaiting: dict[str, float] = {}
        self._gone: set[str] = set()
        self._resumed: set[str] = set()
        self._next_full = 0.0
        self.dirty = False

    @property
    def open_sessions(self) -> int:
        return len(self._open)

    def opened(self, session_id: str) -> None:
        with self._lock:
            self._open[session_id] = None
            self._new_open.add(session_id)
            self._gone.discard(session_id)
            self.dirty = True

    def closed(self, session_id: str) -> None:
        with self._lock:
            self._open.pop(session_id, None)
            self._awaiting.pop(session_id, None)
            written = session_id not in self._new_open  # else its open never reached Redis
            self._new_open.discard(session_id)
            self._new_awaiting.pop(session_id, None)
            self._resumed.discard(session_id)
            if written:  # during an outage, _gone would otherwise grow by every session closed
                self._gone.add(session_id)
            self.dirty = True

    def awaiting(self, session_id: str, since: float) -> None:
        with self._lock:
            if session_id not in self._awaiting:
                self._awaiting[session_id] = since
                self._new_awaiting[session_id] = since
            self._resumed.discard(session_id)
            self.dirty = True

    def resumed(self, session_id: str) -> None:
        with self._lock:
            self._awaiting.pop(session_id, None)
            self._new_awaiting.pop(session_id, None)
            self._resumed.add(session_id)
            self.dirty = True

    @property
    def next_full(self) -> float:
        """When the next refresh of every heartbeat is due (monotonic); far away with none open."""
        return self._next_full if self._open or self._awaiting else float("inf")

    def due(self, now: float) -> bool:
        return self.dirty or (now >= self._next_full and bool(self._open or self._awaiting))

    def sync(self, client: Client, now: float) -> None:
        """Write pending changes (all heartbeats when the interval is up). Raises redis errors,
        after putting the changes back for the next attempt."""
        with self._lock:
            full = now >= self._next_full
            opened = set(self._open) if full else self._new_open
            awaiting = dict(self._awaiting) if full else self._new_awaiting
            gone, resumed = self._gone, self._resumed
            self._new_open, self._new_awaiting, self._gone, self._resumed = set(), {}, set(), set()
            self.dirty = False
        try:
            pipe = client.pipeline(transaction=False)
            expiry = time.time() + self.ttl
            if opened:
                pipe.zadd(self.keys.active_sessions, dict.fromkeys(opened, expiry))
            if awaiting:
                pipe.zadd(self.keys.awaiting_sessions, awaiting)
            if gone:
                pipe.zrem(self.keys.active_sessions, *gone)
            if gone or resumed:
                pipe.zrem(self.keys.awaiting_sessions, *(gone | resumed))
            if len(pipe):
                pipe.execute()
        except (redis.RedisError, OSError, RedisClusterException):
            with self._lock:
                self._new_open |= {s for s in opened if s in self._open}
                for session_id, since in awaiting.items():
                    if session_id in self._awaiting:
                        self._new_awaiting.setdefault(session_id, since)
                self._gone |= {s for s in gone if s not in self._open}
                self._resumed |= {s for s in resumed if s not in self._awaiting}
                self.dirty = True
            raise
        if full:
            self._next_full = now + self.interval

    def release(self, client: Client) -> None:
        """At close: the sessions still open here lose their heartbeat (nobody will refresh it)."""
        with self._lock:
            still_open = list(self._open)
            self._open.clear()
        if still_open:
            client.zrem(self.keys.active_sessions, *still_open)
