"""The pipeline's state as Redis shows it, read-only.

One view for every reader: ``metrics-worker status`` prints it, the API serves it at /v1/pipeline,
the dashboard draws it, the demo and the tests wait on it. It covers every shard (contract/keys.py,
placed as the client's mode wants: ``contract.connect.placed``) and every dead-letter stream, on one
Redis or a Redis Cluster, and never writes (XLEN, XINFO, XPENDING, XRANGE, XREVRANGE).

Beyond a stream's length (the entries kept until trimmed: not what was received, nor what waits):

- **undelivered**: the group's lag, entries not yet read by any worker;
- **pending**: read, not yet acknowledged (both as contract/backlog.py reads them, as the OTLP
  receiver does for its admission bound);
- **lag_seconds**: the age of the oldest entry still waiting (the oldest pending one, or the first
  undelivered one), from its id's time: how far behind the workers are, in seconds, 0 when nothing
  waits. Measured against this host's clock (entry ids carry Redis's; NTP keeps them together);
- **acknowledged**: the group's ``entries-read`` (Redis 7) minus what is pending, a counter of the
  entries the workers finished with (applied, or dead-lettered). A rate needs two reads:
  :func:`applied_per_second` of two views taken a moment apart (the dashboard keeps its previous
  poll) is the entries applied per second, dead letters made in between left out. Chosen over
  counting rows in PostgreSQL because no table records every applied event (applied_counter_events
  holds two event types only), and over the worker's Prometheus counters because a reader cannot
  reach them: this costs nothing more than the XINFO GROUPS the view reads anyway.
- **unrouted**: with K > 1 shards, the entries of the base stream (``METRICS_STREAM`` itself) the
  group has not finished with. Workers read only the K shards, so these are never read: a producer
  wrote them without the routing rule (contract/routing.py). :func:`unrouted_warning` says what to
  do; ``metrics-worker status`` prints it and each worker logs it in its housekeeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisClusterException

from contract.backlog import StreamBacklog, read_backlog
from contract.connect import Client, connect, placed
from contract.deadletters import DeadLetter
from contract.entries import as_text, parse_id
from contract.keys import Keys

#: Dead letters shown with their reason, newest first.
LATEST_DEAD_LETTERS = 10

#: What reading the view raises when Redis does not answer (or refuses a command).
UNAVAILABLE: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)


class _Model(BaseModel):
    # each field's docstring is its description in the API's OpenAPI schema (/docs)
    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


class ConsumerState(_Model):
    name: str
    pending: int
    """Entries it read and has not acknowledged."""
    idle_ms: int
    """Milliseconds since it last read."""


class StreamState(_Model):
    stream: str
    length: int
    """Entries kept in the stream: acknowledged ones stay until trimmed (not a count received)."""
    undelivered: int | None
    """Not yet read by any worker; null: some, but Redis cannot say how many (Redis < 7)."""
    pending: int
    """Read, not yet acknowledged."""
    acknowledged: int | None
    """Entries the group finished with (applied or dead-lettered), a counter; null: Redis < 7."""
    lag_seconds: float
    """Age of the oldest entry waiting (pending or undelivered), in seconds; 0: none waits."""
    consumers: list[ConsumerState]


class LetterState(_Model):
    id: str
    """Its id in its dead-letter stream (``metrics-worker dlq show ID``)."""
    key: str
    """The dead-letter stream it is in."""
    failed_at: str
    stream: str
    """The stream the entry came from."""
    entry_id: str
    deliveries: int
    reason: str


class PipelineStatus(_Model):
    configured: bool = True
    """False: the API was started without REDIS_URL (and nothing else is set)."""
    group: str | None = None
    read_at: float = 0.0
    """When it was read, Unix seconds (this host's clock): two reads give a rate."""
    undelivered: int | None = 0
    """Over every shard; null: a shard cannot say (Redis < 7)."""
    pending: int = 0
    acknowledged: int | None = 0
    """Over every shard; null: Redis < 7. Applied per second: worker.status.applied_per_second."""
    lag_seconds: float = 0.0
    """The largest of the shards': the age of the oldest entry waiting."""
    streams: list[StreamState] = []
    dead_letter_streams: list[str] = []
    """Every dead-letter stream read: one per shard, then the shared one of earlier versions."""
    dead_letters: int = 0
    latest_dead_letters: list[LetterState] = []
    """The newest, newest first."""
    base_stream: str | None = None
    """The stream named by METRICS_STREAM: with one shard the stream itself, with K > 1 the name the
    shards derive from, which no worker reads."""
    unrouted: int | None = 0
    """With K > 1 shards: entries in the base stream that no worker reads (their producer ignored
    the routing rule, contract/routing.py), until applied once by ``metrics-worker run --shards 1
    --burst``; 0 with one stream; null: some, but Redis < 7 cannot say how many."""


def read_status(client: Client, keys: Keys, group: str, latest: int = LATEST_DEAD_LETTERS) -> PipelineStatus:
    """The pipeline now, with the ``latest`` dead letters (newest first). ``client`` is what
    :func:`contract.connect.connect` returned. Raises one of ``UNAVAILABLE``."""
    keys = placed(keys, client)
    now_ms = time.time() * 1000
    streams = [_stream(client, found, group, now_ms) for found in read_backlog(client, keys.streams, group)]
    letter_keys = keys.dead_letter_streams
    undelivered = [s.undelivered for s in streams]
    acknowledged = [s.acknowledged for s in streams]
    return PipelineStatus(
        group=group,
        read_at=round(now_ms / 1000, 3),
        undelivered=None if None in undelivered else sum(n or 0 for n in undelivered),
        pending=sum(s.pending for s in streams),
        acknowledged=None if None in acknowledged else sum(n or 0 for n in acknowledged),
        lag_seconds=max((s.lag_seconds for s in streams), default=0.0),
        streams=streams,
        dead_letter_streams=letter_keys,
        dead_letters=sum(int(client.xlen(key)) for key in letter_keys),
        latest_dead_letters=_latest_letters(client, letter_keys, latest),
        base_stream=keys.stream,
        unrouted=unrouted_count(client, keys, group),
    )


def unrouted_count(client: Client, keys: Keys, group: str) -> int | None:
    """Entries of the base stream the group has not finished with while workers read K > 1
    shards, so none ever will (all of them when the group never read it); 0 with one stream.
    None when there are some and Redis < 7 cannot say how many."""
    if keys.shards == 1:
        return 0
    (base,) = read_backlog(client, [keys.stream], group)
    return base.backlog


def unrouted_warning(unrouted: int | None, keys: Keys) -> str:
    """What to say about entries of the base stream that no worker reads (``unrouted`` > 0 or None),
    in one line: how many, why, and what to do."""
    count = (
        "some entries (Redis < 7 cannot count them)"
        if unrouted is None
        else "1 entry"
        if unrouted == 1
        else f"{unrouted} entries"
    )
    return (
        f"{count} in {keys.stream}, the base stream, that no worker reads: with METRICS_SHARDS="
        f"{keys.shards} workers read only its {keys.shards} shards, so a producer wrote these without "
        'the routing rule. Route each event to its shard (contract/routing.py; README, "From any '
        'language"); to apply the ones already there, run `metrics-worker run --shards 1 --burst` '
        "once, with the same stream and group"
    )


def applied_per_second(before: PipelineStatus, after: PipelineStatus) -> float | None:
    """Entries applied per second between two views of one group: entries acknowledged, less the
    dead letters made meanwhile. None when it cannot be told (Redis < 7, no time between them)."""
    seconds = after.read_at - before.read_at
    if before.acknowledged is None or after.acknowledged is None or seconds <= 0:
        return None
    applied = after.acknowledged - before.acknowledged - max(0, after.dead_letters - before.dead_letters)
    return max(0, applied) / seconds


def _stream(client: Client, backlog: StreamBacklog, group: str, now_ms: float) -> StreamState:
    stream, info, waiting = backlog.stream, backlog.group, backlog.undelivered
    finished: int | None = 0  # no group yet: nothing read, nothing finished
    consumers = []
    if info is not None:
        read = _entries_read(info)
        finished = None if read is None else read - backlog.pending
        consumers = client.xinfo_consumers(stream, group)
    oldest = _oldest_waiting(client, stream, group, info, waiting)
    return StreamState(
        stream=stream,
        length=backlog.length,
        undelivered=waiting,
        pending=backlog.pending,
        acknowledged=finished,
        lag_seconds=0.0 if oldest is None else round(max(0.0, now_ms - oldest) / 1000, 3),
        consumers=[
            ConsumerState(name=as_text(c["name"]), pending=int(c["pending"]), idle_ms=int(c["idle"]))
            for c in consumers
        ],
    )


def _entries_read(info: dict[str, Any]) -> int | None:
    """The group's read counter (Redis 7): None before Redis 7, or after a SETID that lost it; a
    group that has read nothing yet reports nil too, which is 0."""
    if "entries-read" not in info:
        return None
    read = info["entries-read"]
    if read is None:
        return 0 if parse_id(info["last-delivered-id"]) == (0, 0) else None
    return int(read)


def _oldest_waiting(
    client: Client, stream: str, group: str, info: dict[str, Any] | None, waiting: int | None
) -> int | None:
    """The time (Unix ms, from its id) of the oldest entry the group has not finished with: its
    oldest pending entry, or the first one after the last it was delivered."""
    times = []
    if info is not None and int(info["pending"]):
        summary: Any = client.xpending(stream, group)
        if summary["min"] is not None:
            times.append(parse_id(summary["min"])[0])
    if waiting != 0:
        start = "-" if info is None else "(" + as_text(info["last-delivered-id"])
        first: Any = client.xrange(stream, min=start, max="+", count=1)
        if first:
            times.append(parse_id(first[0][0])[0])
    return min(times, default=None)


def _latest_letters(client: Client, letter_keys: Sequence[str], count: int) -> list[LetterState]:
    if count <= 0:
        return []
    found = []
    for key in letter_keys:
        entries: Any = client.xrevrange(key, "+", "-", count=count)
        found += [DeadLetter.from_entry(entry_id, fields, key=key) for entry_id, fields in entries]
    found.sort(key=lambda letter: parse_id(letter.id), reverse=True)
    return [
        LetterState(
            id=letter.id,
            key=letter.key,
            failed_at=letter.failed_at,
            stream=letter.stream,
            entry_id=letter.entry_id,
            deliveries=letter.deliveries,
            reason=letter.reason,
        )
        for letter in found[:count]
    ]


class StatusSource:
    """The view of one deployment's Redis for a long-running reader (the API): connects on first
    use, cluster-aware (``contract.connect.connect``), and again after a failed first connect, so a
    Redis that starts after the reader is found. Thread-safe."""

    def __init__(self, url: str, keys: Keys, group: str, timeout: float = 3.0) -> None:
        self.url, self.keys, self.group, self.timeout = url, keys, group, timeout
        self._client: Client | None = None
        self._lock = threading.Lock()

    def read(self, latest: int = LATEST_DEAD_LETTERS) -> PipelineStatus:
        """The pipeline now. Raises one of ``UNAVAILABLE`` when Redis does not answer."""
        return read_status(self._connected(), self.keys, self.group, latest)

    def _connected(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = connect(
                    self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
