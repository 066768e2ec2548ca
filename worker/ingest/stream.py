"""A worker's consumer group on Redis, entry by entry: read, claim, ack, dead-letter.

Knows Redis and nothing of SQL. One instance per worker; every call is one or a few round trips.
Keeping the streams short (trims, idle consumers) is worker/ingest/housekeeping.py.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis
from redis.connection import parse_url

from contract.backlog import read_backlog
from contract.connect import (
    TRANSIENT_ERRORS,
    Client,
    connect,
    describe,
    is_cluster,
    node_for,
    placed,
    refresh,
)
from contract.deadletters import letter_fields, payload_of
from contract.entries import as_text, parse_id
from contract.keys import Keys
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes] | None]  # (entry id, fields); fields None: trimmed while pending


class Letter(NamedTuple):
    """An entry to move to the dead-letter stream, with why (``reason``'s word before the colon
    is its kind: invalid event, too large, refused, poison ...)."""

    entry: Entry
    deliveries: int
    reason: str


# Dead letters of one stream: ARGV = group, then per letter its entry id, the number of field
# names and values, and those. Every XADD first, then one XACK: an XADD that fails ends the
# script with an error before anything is acked.
_DEAD_LETTER = """
local ids, i = {}, 2
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, i + 2, i + 1 + n))
  ids[#ids + 1] = ARGV[i]
  i = i + 2 + n
end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
"""

#: On a cluster, the longest an idle worker waits on one shard before looking at all of them again
#: (it cannot wait on shards in different slots at once): the worst extra latency when idle.
CLUSTER_IDLE_WAIT_MS = 100


@dataclass
class Batch:
    """Entries read from one stream in one call."""

    stream: str
    entries: list[Entry]
    deliveries: dict[bytes, int] = field(default_factory=dict)  # only for re-deliveries


def check_url(url: str) -> None:
    """Raises ValueError for a URL the worker cannot read entries through."""
    if parse_url(url).get("decode_responses"):  # type: ignore[no-untyped-call]  # the URL's query wins
        raise ValueError(
            "REDIS_URL: decode_responses is not supported: the worker reads entries as bytes "
            "(a payload need not be UTF-8 to be dead-lettered intact)"
        )


def open_stream(settings: WorkerSettings) -> StreamClient:
    """The worker's Redis side, connected; its start-up log line names the mode. A read may
    block for ``block_ms``, so the socket waits that long and 5 s more."""
    timeout = max(5.0, settings.block_ms / 1000 + 5)
    return StreamClient.connect(
        settings.redis_url,
        settings.keys,
        settings.group,
        settings.consumer,
        timeout,
        settings.connect_timeout.total_seconds(),
    )


class StreamClient:
    """One worker's view of the group's streams, on one Redis or a Redis Cluster (``client`` is
    what contract/connect.py returned). Reads go to the master of each stream's slot directly."""

    def __init__(self, client: Client, keys: Keys, group: str, consumer: str) -> None:
        self.client = client
        self.cluster = is_cluster(client)
        self.keys = placed(keys, client)
        self.group = group
        self.consumer = consumer
        self.streams = self.keys.streams
        self._rr = 0
        self._claim_cursor = {s: b"0-0" for s in self.streams}
        self._dead_letter = client.register_script(_DEAD_LETTER)
        # XREADGROUP replies unparsed: redis-py would build a dict and two lists per entry before
        # we build ours (0.8 of 3.1 us per entry). A second client on the same connection pool, so
        # the caller's client keeps its own parsing; on a cluster, one per master, made on demand.
        self._readers: dict[str, redis.Redis] = {}

    @classmethod
    def connect(
        cls, url: str, keys: Keys, group: str, consumer: str, timeout: float, connect_timeout: float = 5.0
    ) -> StreamClient:
        """Connected to one Redis or a cluster, whichever ``url`` names; the mode in the log. A read
        may wait ``timeout`` seconds, a connect ``connect_timeout``."""
        client = connect(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout)
        reader = cls(client, keys, group, consumer)
        shown = ", ".join(reader.streams[:4]) + (" ..." if len(reader.streams) > 4 else "")
        log.info("worker %s: %s; streams %s, group %s", consumer, describe(client), shown, group)
        return reader

    def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- reading ------------------------------------------------------------------------------

    def read_own_pending(self, count: int) -> list[Batch]:
        """Entries delivered to this consumer name before and never acked (a restart after a crash)."""
        out = []
        for stream in self.streams:
            for _, entries in self._xreadgroup([stream], "0", count, None):
                if entries:
                    out.append(Batch(stream, entries, self._deliveries(stream, entries)))
        return out

    def claim_stale(self, count: int, min_idle_ms: int) -> list[Batch]:
        """XAUTOCLAIM entries idle longer than ``min_idle_ms`` on any consumer, following the cursor
        across calls so that every pending entry is visited, not just the first page."""
        out = []
        for stream in self.streams:
            start = self._claim_cursor[stream]
            reply = self.client.xautoclaim(stream, self.group, self.consumer, min_idle_ms, start, count=count)
            self._claim_cursor[stream] = reply[0]
            entries: list[Entry] = [e for e in reply[1] if e is not None and e[0] is not None]
            gone = list(reply[2]) if len(reply) > 2 else []
            if gone:  # trimmed while pending (Redis 7 drops them from the PEL itself)
                log.warning("%d pending entries of %s no longer exist in the stream", len(gone), stream)
            if len(entries) < len(reply[1]):
                # Redis < 7 returns a deleted entry as nil, without its id, and keeps it pending
                # (now on us): find it in our pending list, to ack it as gone, or every worker
                # claiming it would fail on it, and a burst would never see the group drained.
                claimed = {e[0] for e in entries}
                end = "+" if parse_id(reply[0]) == (0, 0) else "(" + as_text(reply[0])
                rows: Any = self.client.xpending_range(
                    stream, self.group, min=start, max=end, count=count, consumername=self.consumer
                )
                candidates = [row["message_id"] for row in rows if row["message_id"] not in claimed]
                # Ours and pending but not claimed now may also be a batch of ours in flight:
                # only an id the stream no longer has is gone.
                with self.client.pipeline(transaction=False) as pipe:
                    for entry_id in candidates:
                        pipe.xrange(stream, min=entry_id, max=entry_id, count=1)
                    found = pipe.execute()
                entries += [
                    (entry_id, None) for entry_id, hit in zip(candidates, found, strict=True) if not hit
                ]
                entries.sort(key=lambda e: parse_id(e[0]))
            if entries:
                out.append(Batch(stream, entries, self._deliveries(stream, entries)))
        return out

    def read_new(self, count: int, block_ms: int | None) -> list[Batch]:
        """New entries, up to ``count`` per shard. One Redis: the first shard with entries, in turn
        (every shard's at once left other workers idle: 0.73x with 4 workers on 4 shards), and if
        all were empty, one XREADGROUP over all of them that blocks until any has entries. A cluster
        refuses that (CROSSSLOT): a non-blocking read per shard, pipelined per master; if all were
        empty, a wait on one shard (in turn) of at most ``CLUSTER_IDLE_WAIT_MS``: no spin."""
        if not self.cluster:
            n = len(self.streams)
            for i in range(n if n > 1 else 0):
                stream = self.streams[(self._rr + i) % n]
                found = self._batches(self._xreadgroup([stream], ">", count, None))
                if found:
                    self._rr = (self._rr + i + 1) % n
                    return found
            return self._batches(self._xreadgroup(self.streams, ">", count, block_ms or None))
        found = self._sweep(count)
        if found or not block_ms:
            return found
        stream = self.streams[self._rr % len(self.streams)]
        self._rr += 1
        return self._batches(self._xreadgroup([stream], ">", count, min(block_ms, CLUSTER_IDLE_WAIT_MS)))

    def _sweep(self, count: int) -> list[Batch]:
        by_node: dict[str, list[str]] = {}
        for stream in self.streams:
            by_node.setdefault(self._reader_for(stream)[0], []).append(stream)
        out: list[Batch] = []
        for node, streams in by_node.items():
            with self._node_errors(), self._readers[node].pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.xreadgroup(self.group, self.consumer, {stream: ">"}, count=count)
                replies = pipe.execute()
            for reply in replies:
                out += self._batches(_streams_of(reply))
        return out

    def _xreadgroup(
        self, streams: list[str], start: str, count: int, block: int | None
    ) -> list[tuple[str, list[Entry]]]:
        """One XREADGROUP, on the master of the streams' slot (they share one on a cluster)."""
        _, reader = self._reader_for(streams[0])
        with self._node_errors():
            reply = reader.xreadgroup(self.group, self.consumer, dict.fromkeys(streams, start), count, block)
        return _streams_of(reply)

    def _reader_for(self, stream: str) -> tuple[str, redis.Redis]:
        node, client = node_for(self.client, stream)
        reader = self._readers.get(node)
        if reader is None or reader.connection_pool is not client.connection_pool:
            reader = redis.Redis(connection_pool=client.connection_pool)
            reader.set_response_callback("XREADGROUP", _unparsed)
            self._readers[node] = reader
        return node, reader

    @contextlib.contextmanager
    def _node_errors(self) -> Iterator[None]:
        """A master that went away or gave its slots up (failover, resharding): ask the cluster for
        its slot map again before the caller retries, so the retry goes to the new master."""
        try:
            yield
        except TRANSIENT_ERRORS:
            if self.cluster:
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    refresh(self.client)
            raise

    @staticmethod
    def _batches(replies: list[tuple[str, list[Entry]]]) -> list[Batch]:
        return [Batch(stream, entries) for stream, entries in replies if entries]

    def _deliveries(self, stream: str, entries: Sequence[Entry]) -> dict[bytes, int]:
        ids = [e[0] for e in entries]
        rows: Any = self.client.xpending_range(
            stream, self.group, min=ids[0], max=ids[-1], count=len(ids) + 100, consumername=self.consumer
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    # -- finishing ----------------------------------------------------------------------------

    def ack(self, stream: str, ids: Sequence[bytes]) -> None:
        if ids:
            self.client.xack(stream, self.group, *ids)

    def dead_letter(self, stream: str, letters: Sequence[Letter]) -> None:
        """Copy entries to the stream's dead-letter stream and ack them, in one script in the
        stream's slot. Not a MULTI: Redis does not roll a transaction back when a command in it
        fails (a dead-letter key of the wrong type, out of memory), so the XACK would run without
        its XADD and the entry would be lost; in the script, a failed XADD stops it before the
        XACK. A crash half-way leaves the entries pending, dead-lettered again later: a duplicate
        letter, never a lost entry."""
        if not letters:
            return
        args: list[Any] = [self.group]
        for (entry_id, fields), deliveries, reason in letters:
            flat = letter_fields(
                payload=payload_of(fields or {}),
                stream=stream,
                entry_id=entry_id.decode(),
                group=self.group,
                consumer=self.consumer,
                deliveries=deliveries,
                reason=reason,
            )
            args += [entry_id, 2 * len(flat)]
            for name, value in flat.items():
                args += [name, value]
        self._dead_letter(keys=[stream, self.keys.dead_letters_for(stream)], args=args)

    # -- state ---------------------------------------------------------------------------------

    def backlog(self) -> tuple[int, int]:
        """(entries not yet delivered to the group, entries pending) over all shards
        (contract.backlog.read_backlog); an uncounted "some" (Redis < 7) counts 1."""
        found = read_backlog(self.client, self.streams, self.group)
        undelivered = sum(1 if s.undelivered is None else s.undelivered for s in found)
        return undelivered, sum(s.pending for s in found)

    def report_lag(self) -> dict[str, tuple[int, int]]:
        """(undelivered, pending) of each shard where the group exists, for the gauges; an
        uncounted "some" (Redis < 7) shows 0."""
        found = read_backlog(self.client, self.streams, self.group)
        return {s.stream: (s.undelivered or 0, s.pending) for s in found if s.group is not None}


def _unparsed(response: Any, **options: Any) -> Any:
    return response


def _streams_of(reply: Any) -> list[tuple[str, list[Entry]]]:
    """(stream, entries) of a raw XREADGROUP reply: RESP2 [[stream, entries], ...] or RESP3
    {stream: entries}, each entry [id, [field, value, ...]], or [id, nil] once trimmed."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(as_text(name), [(entry_id, _fields(flat)) for entry_id, flat in raw]) for name, raw in pairs]


def _fields(flat: list[bytes] | None) -> dict[bytes, bytes] | None:
    if flat is None:
        return None
    if len(flat) == 2:  # the one field every valid entry has
        return {flat[0]: flat[1]}
    it = iter(flat)
    return dict(zip(it, it, strict=True))
