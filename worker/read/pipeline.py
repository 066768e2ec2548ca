"""Pipeline health for the dashboard: per stream backlog, pending entries and consumers, and the
dead letters with their latest reasons, read from Redis with plain commands.

The read side may not import the ingest side (import contract), so this reads the same keys
(:mod:`contract.keys`) itself; it only reads (XLEN, XINFO, XREVRANGE), never acks or trims.
"""

from __future__ import annotations

from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

from contract.keys import Keys

#: Dead letters shown with their reason, newest first.
LATEST_DEAD_LETTERS = 10


def redis_client(url: str) -> redis.Redis:
    """The one place the read side connects to Redis (a cluster-aware factory can replace it)."""
    return redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ConsumerHealth(_Model):
    name: str
    pending: int
    idle_ms: int


class StreamHealth(_Model):
    stream: str
    length: int
    undelivered: int | None  # None: Redis cannot say (Redis < 7, or lag lost after deletions)
    pending: int
    consumers: list[ConsumerHealth]


class DeadLetterSummary(_Model):
    id: str
    failed_at: str
    stream: str
    deliveries: int
    reason: str


class PipelineHealth(_Model):
    configured: bool  # False: the API was started without REDIS_URL
    group: str | None = None
    streams: list[StreamHealth] = []
    dead_letter_key: str | None = None
    dead_letters: int = 0
    latest_dead_letters: list[DeadLetterSummary] = []


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _stream(client: redis.Redis, stream: str, group: str) -> StreamHealth:
    if not client.exists(stream):
        return StreamHealth(stream=stream, length=0, undelivered=0, pending=0, consumers=[])
    length = int(client.xlen(stream))
    groups: Any = client.xinfo_groups(stream)
    info = next((g for g in groups if _text(g["name"]) == group), None)
    if info is None:  # no group yet: everything is undelivered
        return StreamHealth(stream=stream, length=length, undelivered=length, pending=0, consumers=[])
    consumers: Any = client.xinfo_consumers(stream, group)
    return StreamHealth(
        stream=stream,
        length=length,
        undelivered=_undelivered(client, stream, info),
        pending=int(info["pending"]),
        consumers=[
            ConsumerHealth(name=_text(c["name"]), pending=int(c["pending"]), idle_ms=int(c["idle"]))
            for c in consumers
        ],
    )


def _id(value: Any) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def _undelivered(client: redis.Redis, stream: str, info: dict[str, Any]) -> int | None:
    """The group's lag; when Redis lost count (after deletions, or Redis < 7), 0 if the group has
    been delivered the stream's last entry, else unknown."""
    if info.get("lag") is not None:
        return int(info["lag"])
    last: Any = client.xinfo_stream(stream)["last-generated-id"]
    return 0 if _id(info["last-delivered-id"]) >= _id(last) else None


def _letter(entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetterSummary:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode("utf-8", "replace")

    return DeadLetterSummary(
        id=entry_id.decode(),
        failed_at=text("failed_at"),
        stream=text("stream"),
        deliveries=int(text("deliveries") or 0),
        reason=text("reason"),
    )


def pipeline_health(client: redis.Redis, keys: Keys, group: str) -> PipelineHealth:
    """The pipeline as Redis sees it now. Raises redis.RedisError when Redis does not answer."""
    latest: Any = client.xrevrange(keys.dead_letters, "+", "-", count=LATEST_DEAD_LETTERS)
    return PipelineHealth(
        configured=True,
        group=group,
        streams=[_stream(client, stream, group) for stream in keys.streams],
        dead_letter_key=keys.dead_letters,
        dead_letters=int(client.xlen(keys.dead_letters)),
        latest_dead_letters=[_letter(i, f) for i, f in latest],
    )
