"""No drop but the spool's disk bound: a flood faster than Redis, and a Redis out of memory, lose
nothing and keep the publisher's order."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import redis

from producer import Publisher
from tests.producer.conftest import RedisServer, quick_settings, read_stream, wait_for


def _reasons(client: redis.Redis, stream: str) -> list[str]:
    return [ev.reason for ev in read_stream(client, stream)]  # type: ignore[union-attr]


def test_a_flood_with_a_small_queue_loses_nothing_and_keeps_order(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    """100,000 events as fast as one thread can publish, into a 500-event queue: before, about
    88% were dropped as 'queue full'."""
    pub = Publisher(quick_settings(redis_url=redis_url, stream=stream, spool_dir=tmp_path, queue_size=500))
    for i in range(100_000):
        pub.sync_mismatch(f"r{i}")
    assert pub.close(60)
    stats = pub.stats()
    assert not any(v for k, v in stats.items() if k.startswith("dropped_")), stats
    assert stats["sent"] + stats["replayed"] == 100_000, stats
    assert _reasons(redis_client, stream) == [f"r{i}" for i in range(100_000)]


def test_a_redis_slower_than_the_agent_sends_the_queue_to_the_spool_not_to_the_floor(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    private_redis.start(extra=("--enable-debug-command", "yes"))
    client = private_redis.client()
    stream = "slow:events"
    pub = Publisher(
        quick_settings(
            redis_url=private_redis.url,
            stream=stream,
            spool_dir=tmp_path / "spool",
            queue_size=1000,
            socket_timeout=5.0,
        )
    )
    pub.sync_mismatch("r-first")
    assert pub.flush(5)
    stall = threading.Thread(target=lambda: private_redis.client().execute_command("DEBUG", "SLEEP", "1"))
    stall.start()
    time.sleep(0.1)
    pub.sync_mismatch("r-stalled")  # taken by the sender, which now waits for Redis
    wait_for(lambda: pub.queued == 0)
    started = time.perf_counter()
    for i in range(5_000):
        pub.sync_mismatch(f"r{i}")
    blocked = time.perf_counter() - started
    stall.join()
    assert pub.flush(30)
    stats = pub.stats()
    pub.close(5)
    assert not any(v for k, v in stats.items() if k.startswith("dropped_")), stats
    assert stats["overflows"] >= 1 and stats["spooled"] > 0 and stats["send_failures"] == 0, stats
    assert blocked < 1.5, blocked  # at most the one round trip that was in flight
    assert _reasons(client, stream) == ["r-first", "r-stalled", *(f"r{i}" for i in range(5_000))]
    client.close()


def test_redis_out_of_memory_is_an_outage_spooled_retried_and_logged_once(
    private_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private_redis.start(extra=("--maxmemory", "3mb", "--maxmemory-policy", "noeviction"))
    client = private_redis.client()
    stream = "oom:events"
    pub = Publisher(quick_settings(redis_url=private_redis.url, stream=stream, spool_dir=tmp_path / "spool"))
    with caplog.at_level(logging.WARNING, logger="producer"):
        for i in range(40_000):
            pub.sync_mismatch(f"r{i:05d}-" + "x" * 100)
            if i % 1000 == 999:
                pub.flush(0.5)
        wait_for(lambda: pub.stats()["spooled"] > 0 and pub.stats()["send_failures"] > 2, timeout=30)
        assert pub.stats()["mode"] != "up"
        client.config_set("maxmemory", 0)  # memory is back
        assert pub.flush(30)
    stats = pub.stats()
    pub.close(5)
    assert not any(v for k, v in stats.items() if k.startswith("dropped_")), stats
    assert _reasons(client, stream) == [f"r{i:05d}-" + "x" * 100 for i in range(40_000)]
    refusals = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert "maxmemory" in refusals[0].getMessage()  # OutOfMemoryError, named
    client.close()
