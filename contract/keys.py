"""Every Redis key name of the pipeline, in one place.

All names derive from the stream name (default ``metrics:events``), so one setting moves a
whole deployment (or one test) to its own keys.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DEFAULT_STREAM = "metrics:events"
DEFAULT_GROUP = "metrics-workers"


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment. ``shards`` > 1 spreads events over K streams."""

    stream: str = DEFAULT_STREAM
    shards: int = 1

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards: must be at least 1, got {self.shards}")

    @property
    def streams(self) -> list[str]:
        """The stream keys events are published to. Shards carry a Redis Cluster hash tag
        (``metrics:events:{3}``) so that each shard lives in one slot and shards spread over nodes."""
        if self.shards == 1:
            return [self.stream]
        return [f"{self.stream}:{{{i}}}" for i in range(self.shards)]

    def stream_for(self, routing_id: str) -> str:
        """The shard for an entity: a stable hash (CRC-32) of its session or forward id, the same
        in every process and language, so one session's events share a stream."""
        if self.shards == 1:
            return self.stream
        return self.streams[zlib.crc32(routing_id.encode("utf-8")) % self.shards]

    @property
    def dead_letters(self) -> str:
        """Entries that cannot be applied, with the reason (see worker/ingest/deadletter.py)."""
        return f"{self.stream}:dead"

    @property
    def active_sessions(self) -> str:
        """Sorted set: session_id -> heartbeat expiry (unix seconds). Kept alive by the producer
        while a session is open; the reconcile job leaves sessions with a live heartbeat alone."""
        return f"{self.stream}:hints:active"

    @property
    def awaiting_sessions(self) -> str:
        """Sorted set: session_id -> unix seconds when it began waiting for the user's answer.
        A session found stale while in this set is reconciled to awaiting_response."""
        return f"{self.stream}:hints:awaiting"

    @staticmethod
    def producer_marker(stream: str, token: str) -> str:
        """The batch-sequence marker of one producer on one stream (producer/sender.py), in the
        stream's Redis Cluster slot since one script writes both: ``<stream>:seq:<token>`` when the
        stream name has a hash tag, else ``<stream>:seq:{<stream>}:<token>``."""
        start = stream.find("{")
        if start >= 0 and stream.find("}", start + 2) > start:
            return f"{stream}:seq:{token}"
        return f"{stream}:seq:{{{stream}}}:{token}"
