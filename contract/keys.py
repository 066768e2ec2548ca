"""Every Redis key name of the pipeline, in one place.

All names derive from the stream name (default ``metrics:events``), so one setting moves a
whole deployment (or one test) to its own keys.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import cache

from contract.routing import shard_of

DEFAULT_STREAM = "metrics:events"
DEFAULT_GROUP = "metrics-workers"


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment. ``shards`` > 1 spreads events over K streams; ``cluster``
    (found by contract/connect.py, never configured) picks shard tags that spread over masters."""

    stream: str = DEFAULT_STREAM
    shards: int = 1
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards: must be at least 1, got {self.shards}")

    @property
    def streams(self) -> list[str]:
        """The stream keys events are published to. Shards carry a Redis Cluster hash tag, so each
        lives in one slot: ``metrics:events:{3}`` on one Redis; on a cluster the tag of shard i is
        ``cluster_tag(i, K)`` (``metrics:events:{3.1}``), which lands in the i-th K-th of the slot
        range, so that K shards spread evenly over masters holding equal slot ranges."""
        if self.shards == 1:
            return [self.stream]
        if self.cluster:
            return [f"{self.stream}:{{{cluster_tag(i, self.shards)}}}" for i in range(self.shards)]
        return [f"{self.stream}:{{{i}}}" for i in range(self.shards)]

    def stream_for(self, routing_id: str) -> str:
        """The stream for an event with this routing id (its session, forward or reason): the rule
        of contract/routing.py, the same in every process and language."""
        if self.shards == 1:
            return self.stream
        return self.streams[shard_of(routing_id, self.shards)]

    @property
    def dead_letters(self) -> str:
        """The dead-letter stream of the unsharded stream on one Redis (and where dead letters of
        every shard went before they had one per shard: still listed and redriven)."""
        return f"{self.stream}:dead"

    def dead_letters_for(self, stream: str) -> str:
        """The dead letters of one stream, in that stream's Cluster slot, so that a worker writes
        a letter and acks its entry in one script (worker/ingest/stream.py)."""
        if self.shards == 1 and not self.cluster:
            return self.dead_letters
        return _in_slot_of(stream, "dead")

    @property
    def dead_letter_streams(self) -> list[str]:
        """Every dead-letter stream to look at: one per stream, then the legacy shared one."""
        return list(dict.fromkeys([*(self.dead_letters_for(s) for s in self.streams), self.dead_letters]))

    @property
    def active_sessions(self) -> str:
        """Sorted set: session_id -> heartbeat expiry (unix seconds). Kept alive by the producer
        while a session is open; the reconcile job leaves sessions with a live heartbeat alone.
        The protocol, for producers in any language: contract/liveness.py."""
        return f"{self.stream}:hints:active"

    @property
    def awaiting_sessions(self) -> str:
        """Sorted set: session_id -> unix seconds when it began waiting for the user's answer.
        A session found stale while in this set is reconciled to awaiting_response
        (contract/liveness.py)."""
        return f"{self.stream}:hints:awaiting"

    @staticmethod
    def producer_marker(stream: str, token: str) -> str:
        """The batch-sequence marker of one producer on one stream (producer/sender.py), in the
        stream's Redis Cluster slot since one script writes both: ``<stream>:seq:<token>`` when the
        stream name has a hash tag, else ``<stream>:seq:{<stream>}:<token>``."""
        return _in_slot_of(stream, "seq", token)


def _in_slot_of(stream: str, *parts: str) -> str:
    """``<stream>:<parts>`` when the stream name has a hash tag, else ``<stream>:<part>:{<stream>}``
    and the rest (a tagged key hashes its tag only: the whole untagged stream name)."""
    start = stream.find("{")
    if start >= 0 and stream.find("}", start + 2) > start:
        return ":".join((stream, *parts))
    return ":".join((stream, parts[0], f"{{{stream}}}", *parts[1:]))


SLOTS = 16384


def slot_of(key: str) -> int:
    """The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key."""
    raw = key.encode("utf-8")
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return binascii.crc_hqx(raw, 0) % SLOTS


@cache
def cluster_tag(i: int, shards: int) -> str:
    """The hash tag of shard ``i`` of ``shards`` on a cluster: ``i`` if its slot falls in the
    middle half of the i-th of ``shards`` equal slices of the slot range, else the first ``i.n``
    (n = 1, 2, ...) that does. The same in every process and language (CRC16 is the spec's)."""
    width = SLOTS / shards
    low, high = (i + 0.25) * width, (i + 0.75) * width
    candidate, n = str(i), 0
    while not low <= binascii.crc_hqx(candidate.encode(), 0) % SLOTS < high:
        n += 1
        candidate = f"{i}.{n}"
    return candidate
