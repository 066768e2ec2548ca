"""Stream housekeeping: trim only what every group acknowledged; drop idle consumers holding nothing."""

from __future__ import annotations

import time

import redis

from contract.keys import Keys
from worker.stream import StreamClient


def _add(client: redis.Redis, stream: str, n: int) -> list[bytes]:
    return [client.xadd(stream, {"event": b"{}"}) for _ in range(n)]


def test_trim_keeps_pending_and_undelivered_entries_of_every_group(redis_client: redis.Redis, keys: str) -> None:
    stream = f"{keys}:events"
    ids = _add(redis_client, stream, 10)
    fast = StreamClient(redis_client, Keys(stream), "fast", "c1")
    slow = StreamClient(redis_client, Keys(stream), "slow", "c2")
    fast.ensure_groups()
    slow.ensure_groups()
    batch = fast.read_new(10, None)
    assert batch is not None
    fast.ack(stream, [e[0] for e in batch.entries])      # group "fast" acknowledged all ten
    slow_batch = slow.read_new(4, None)                  # group "slow" got four, acked two
    assert slow_batch is not None
    slow.ack(stream, [e[0] for e in slow_batch.entries[:2]])
    assert fast.trim_acknowledged() == 2                 # only the two every group acknowledged
    assert [e[0] for e in redis_client.xrange(stream)] == ids[2:]
    pending = redis_client.xpending(stream, "slow")
    assert pending["pending"] == 2 and pending["min"] == ids[2]


def test_idle_consumers_without_pending_entries_are_removed(redis_client: redis.Redis, keys: str) -> None:
    stream = f"{keys}:events"
    _add(redis_client, stream, 3)
    me = StreamClient(redis_client, Keys(stream), "g", "me")
    me.ensure_groups()
    idle_empty = StreamClient(redis_client, Keys(stream), "g", "idle-empty")
    idle_holding = StreamClient(redis_client, Keys(stream), "g", "idle-holding")
    assert idle_holding.read_new(1, None) is not None    # keeps one entry pending
    got = idle_empty.read_new(1, None)
    assert got is not None
    idle_empty.ack(stream, [e[0] for e in got.entries])  # holds nothing
    time.sleep(0.05)
    removed = me.remove_idle_consumers(idle_ms=10)
    names = {c["name"] for c in redis_client.xinfo_consumers(stream, "g")}
    assert "idle-empty" in removed and b"idle-empty" not in names
    assert b"idle-holding" in names                      # DELCONSUMER would drop its pending entry
