"""What the bigger drills publish and watch: hostile strings and poison entries, agents that each own
their sessions (to check order per session), and the memory of producer, Redis and workers."""

from __future__ import annotations

import json
import random
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis

from contract.codec import STREAM_FIELD, decode
from contract.events import Event
from contract.fields import DEFAULT_MAX_EVENT_BYTES, MAX_ERROR_LENGTH, MAX_NAME_LENGTH

#: Valid, and hostile to anything that builds SQL or splits lines: applied exactly as sent.
HOSTILE = [
    "'; DROP TABLE session_metrics; --",
    "Robert'); DELETE FROM round_metrics WHERE ('1'='1",
    "💥🔥 agent 👩‍💻 ünïcødé",
    "line one\nline two\r\n\ttabbed",
    "%s %(x)s {0} $1 \\N \\x00 \\",
    '"quoted" `back` \u00b4acute\u00b4',
    "x" * MAX_NAME_LENGTH,
]
_HOSTILE_ERROR = ("E'; --\n💥 " * 2000)[: MAX_ERROR_LENGTH - 1]
_FIELDS = {"model": HOSTILE, "tool_name": HOSTILE, "endpoint": HOSTILE, "reason": HOSTILE}


def hostile(events: list[Event], rng: random.Random, share: float = 0.05) -> list[Event]:
    """``events`` with a share of their free-text fields replaced by hostile strings."""
    out = []
    for ev in events:
        if rng.random() < share:
            update = {name: rng.choice(choices) for name, choices in _FIELDS.items() if hasattr(ev, name)}
            if hasattr(ev, "error"):
                update["error"] = _HOSTILE_ERROR
            ev = ev.model_copy(update=update) if update else ev
        out.append(ev)
    return out


def poison(rng: random.Random, i: int) -> bytes:
    """One entry a worker must dead-letter (and go on)."""
    base = {"v": 1, "event_id": f"bad{i}", "occurred_at": "2026-11-01T00:00:00Z"}
    return rng.choice(
        [
            lambda: b"not json",
            lambda: b"\xff\xfe",
            lambda: b"[]",
            lambda: b'{"type": "session.started"}',
            lambda: json.dumps({"v": 9, "event_id": f"bad{i}", "type": "x"}).encode(),
            lambda: json.dumps(
                {**base, "type": "sync.mismatch", "occurred_at": "yesterday", "reason": "r"}
            ).encode(),
            lambda: json.dumps(
                {**base, "type": "sync.mismatch", "reason": "'; DROP TABLE x; --" * 5000}
            ).encode(),
            lambda: json.dumps(
                {
                    **base,
                    "type": "tool.completed",
                    "tool_call_id": "t",
                    "round_id": "r",
                    "session_id": "s",
                    "success": False,
                    "error": "💥\n" * 50_000,
                }
            ).encode(),
            lambda: b'{"pad": "' + b"x" * (DEFAULT_MAX_EVENT_BYTES + 1) + b'"}',
        ]
    )()


def owner(ev: Event) -> str:
    """The key whose events must stay in published order: the session, or the forward."""
    return str(getattr(ev, "session_id", None) or getattr(ev, "forward_id", None) or "sync")


def partition(events: Iterable[Event], agents: int) -> list[list[Event]]:
    """Events split over ``agents`` publishers, every session (or forward) in one of them."""
    parts: list[list[Event]] = [[] for _ in range(agents)]
    for ev in events:
        parts[zlib.crc32(owner(ev).encode()) % agents].append(ev)
    return parts


def out_of_order(client: redis.Redis, stream: str, events: list[Event]) -> int:
    """Sessions (and forwards) whose events are not in the stream in the order published."""
    published: dict[str, list[str]] = defaultdict(list)
    for ev in events:
        published[owner(ev)].append(ev.event_id)
    arrived: dict[str, list[str]] = defaultdict(list)
    for _, fields in client.xrange(stream):
        ev = decode(fields[STREAM_FIELD.encode()])
        arrived[owner(ev)].append(ev.event_id)
    return sum(1 for key, ids in published.items() if arrived.get(key) != ids)


def _rss(pid: int | str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemoryWatch:
    """Peak resident memory of this process (the producer), Redis (used_memory) and the workers."""

    def __init__(self, client: redis.Redis, worker_pids: list[int], queued: Any) -> None:
        self.client, self.worker_pids, self.queued = client, worker_pids, queued
        self.base = _rss("self")
        self.peak: dict[str, int] = {"producer": 0, "redis": 0, "workers": 0, "queued": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = {
                "producer": _rss("self") - self.base,
                "workers": max((_rss(pid) for pid in self.worker_pids), default=0),
                "queued": self.queued(),
            }
            try:
                sample["redis"] = int(self.client.info("memory")["used_memory"])
            except redis.RedisError:
                sample["redis"] = 0
            for name, value in sample.items():
                self.peak[name] = max(self.peak[name], value)
            time.sleep(0.1)

    def summary(self) -> str:
        mb = 1024 * 1024
        return (
            f"peak memory: producer +{self.peak['producer'] / mb:.0f} MB (queue at most "
            f"{self.peak['queued']:,}), Redis {self.peak['redis'] / mb:.0f} MB, a worker "
            f"{self.peak['workers'] / mb:.0f} MB"
        )
