"""Drills (real Redis servers started and killed): an outage loses nothing and duplicates nothing,
the caller never waits on it, and the spool bound drops the oldest, counted."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from producer import Publisher
from tests.producer.conftest import RedisServer, black_hole, quick_settings, read_stream, wait_for
from tests.producer.helpers import event_calls, publish

pytestmark = pytest.mark.drill


def assert_once_in_order(client: redis.Redis, stream: str, count: int) -> None:
    ids = [event.event_id for event in read_stream(client, stream)]
    assert len(ids) == count
    assert len(set(ids)) == count, "an event arrived twice"
    assert ids == sorted(ids), "one publisher's events arrive in publish order"


def test_ten_thousand_events_published_while_redis_is_down_all_arrive_once(
    private_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = "drill:events"
    pub = Publisher(quick_settings(redis_url=private_redis.url, stream=stream, spool_dir=tmp_path / "spool"))
    took = publish(pub, event_calls(10_000))
    wait_for(lambda: pub.stats()["spooled"] == 10_000)  # all on disk while Redis is away
    took.sort()
    assert took[len(took) // 2] < 50e-6 and took[int(len(took) * 0.99)] < 1e-3
    assert took[-1] < 0.25  # never a connect or socket timeout (0.5 s here)
    assert any("unavailable" in r.message for r in caplog.records if r.levelno == logging.WARNING)

    private_redis.start()
    assert pub.flush(30)
    stats = pub.stats()
    assert stats["replayed"] == 10_000 and stats["sent"] == 0 and stats["deduplicated"] == 0
    assert not any(v for k, v in stats.items() if k.startswith("dropped_"))
    with private_redis.client() as client:
        assert_once_in_order(client, stream, 10_000)
    wait_for(lambda: not any((tmp_path / "spool").iterdir()))  # replayed, then removed
    pub.close(5)


def test_redis_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    stream = "drill:events"
    private_redis.start(durable=True)
    pub = Publisher(quick_settings(redis_url=private_redis.url, stream=stream, spool_dir=tmp_path / "spool"))
    calls = event_calls(10_000, seed=2)
    publish(pub, (next(calls) for _ in range(2_000)))
    assert pub.flush(10)
    publish(pub, (next(calls) for _ in range(1_000)))
    private_redis.stop()  # kill -9, likely with a batch in flight: applied or not, unknown
    publish(pub, (next(calls) for _ in range(3_000)))
    wait_for(lambda: pub.stats()["mode"] == "down")
    private_redis.start(durable=True)
    publish(pub, calls)
    assert pub.flush(30)
    stats = pub.stats()
    assert stats["sent"] > 1_000 and stats["send_failures"] >= 1  # (the slices count calls, not events)
    with private_redis.client() as client:
        assert_once_in_order(client, stream, 10_000)
    pub.close(5)


BUSY_FOR_A_SECOND = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 1000000
"""


def test_a_send_that_times_out_and_runs_late_is_not_added_twice(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis busy for 1 s: the sends time out (0.2 s) and go to the spool, then Redis runs them
    anyway; the replays of the same batches are skipped."""
    import threading

    stream = "drill:events"
    private_redis.start()
    pub = Publisher(
        quick_settings(redis_url=private_redis.url, stream=stream, spool_dir=tmp_path, socket_timeout=0.2)
    )
    calls = event_calls(600, seed=3)
    publish(pub, (next(calls) for _ in range(100)))
    assert pub.flush(10)  # connected: the next send goes out on this connection at once
    with private_redis.client() as client:
        busy = threading.Thread(target=client.eval, args=(BUSY_FOR_A_SECOND, 0))
        busy.start()
        time.sleep(0.05)  # let the script start (a head start, not a wait for a condition)
        publish(pub, calls)
        busy.join()
        assert pub.flush(30)
        stats = pub.stats()
        assert stats["send_failures"] >= 1 and stats["deduplicated"] >= 1, stats  # it ran late
        assert stats["sent"] + stats["replayed"] + stats["deduplicated"] == 600
        assert_once_in_order(client, stream, 600)
    pub.close(5)


def test_the_spool_bound_drops_the_oldest_and_counts_them(
    private_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = "drill:events"
    pub = Publisher(
        quick_settings(
            redis_url=private_redis.url, stream=stream, spool_dir=tmp_path, spool_max_bytes=64 * 1024
        )
    )
    for i in range(2_000):
        pub.sync_mismatch(f"reason {i:04d}")
        if i % 100 == 99:
            wait_for(lambda: pub.queued == 0)  # small batches: the bound acts step by step
    wait_for(lambda: pub.stats()["spooled"] == 2_000)
    stats = pub.stats()
    dropped = stats["dropped_oldest"]
    assert dropped > 0 and stats["spool_bytes"] <= 64 * 1024
    assert any(f"dropped the {n} oldest" in r.message for r in caplog.records for n in range(1, dropped + 1))
    from prometheus_client import REGISTRY

    assert (
        REGISTRY.get_sample_value("metrics_producer_events_total", {"outcome": "dropped_oldest"}) or 0
    ) >= dropped

    private_redis.start()
    assert pub.flush(30)
    with private_redis.client() as client:
        reasons = [event.reason for event in read_stream(client, stream)]  # type: ignore[union-attr]
    assert len(reasons) == 2_000 - dropped
    assert reasons == [f"reason {i:04d}" for i in range(dropped, 2_000)]  # the newest, in order
    pub.close(5)


def test_the_caller_never_waits_for_a_redis_that_hangs(tmp_path: Path) -> None:
    with black_hole() as port:
        pub = Publisher(
            quick_settings(redis_url=f"redis://127.0.0.1:{port}/0", spool_dir=tmp_path, socket_timeout=1.0)
        )
        took = publish(pub, event_calls(5_000, seed=4))
        assert max(took) < 0.25
        wait_for(lambda: pub.stats()["spooled"] == 5_000)
        started = time.monotonic()
        assert pub.close(3) is False  # not delivered; kept on the spool
        assert time.monotonic() - started < 3.5


KILLED_PUBLISHER = textwrap.dedent("""
    import sys, time
    from producer import ProducerSettings, Publisher
    pub = Publisher(ProducerSettings(redis_url=sys.argv[1], stream="drill:events", spool_dir=sys.argv[2]))
    for i in range(3000):
        pub.sync_mismatch(f"reason {i}")
    while pub.stats()["spooled"] < 3000:
        time.sleep(0.01)
    print("spooled", flush=True)
    time.sleep(60)
""")


def test_a_killed_publishers_spool_is_replayed_by_the_next_one(
    private_redis: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_PUBLISHER, private_redis.url, str(spool)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "spooled"
        finally:
            child.send_signal(signal.SIGKILL)
    private_redis.start()
    pub = Publisher(quick_settings(redis_url=private_redis.url, stream="drill:events", spool_dir=spool))
    assert pub.flush(30)
    with private_redis.client() as client:
        wait_for(lambda: client.xlen("drill:events") == 3000)
        # The sender counts a batch once Redis answered: the entries can be there a moment before.
        wait_for(lambda: pub.stats()["replayed"] == 3000)
        assert client.xlen("drill:events") == 3000
    pub.close(5)


def test_a_batch_replayed_twice_is_added_once(private_redis: RedisServer, tmp_path: Path) -> None:
    """As after a SIGKILL between a successful send and the spool's commit."""
    import shutil

    spool = tmp_path / "spool"
    first = Publisher(quick_settings(redis_url=private_redis.url, stream="drill:events", spool_dir=spool))
    publish(first, event_calls(1_000, seed=5))
    wait_for(lambda: first.stats()["spooled"] == 1_000)
    assert first.close(1) is False  # left on the spool
    (original,) = spool.iterdir()
    shutil.copytree(original, spool / f"{original.name}-copy")  # the same batches, twice
    private_redis.start()
    second = Publisher(quick_settings(redis_url=private_redis.url, stream="drill:events", spool_dir=spool))
    assert second.flush(30)
    wait_for(lambda: second.stats()["deduplicated"] == 1_000)
    assert second.stats()["replayed"] == 1_000
    with private_redis.client() as client:
        assert_once_in_order(client, "drill:events", 1_000)
    second.close(5)


def test_recovery_ends_while_the_agent_keeps_publishing(redis_url: str, stream: str, tmp_path: Path) -> None:
    """After replaying a spool, a publisher that never pauses goes back to sending directly (and
    to heartbeats); it used to wait for a quiet step, so steady publishing kept it recovering."""
    spool = tmp_path / "spool"
    earlier = Publisher(quick_settings(redis_url="redis://127.0.0.1:1/0", stream=stream, spool_dir=spool))
    for _ in range(100):
        earlier.sync_mismatch("old")
    earlier.close(2)
    pub = Publisher(quick_settings(redis_url=redis_url, stream=stream, spool_dir=spool))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (pub.stats()["mode"] == "up" and pub.stats()["sent"] > 0):
        pub.sync_mismatch("steady")  # every 20 ms: never a step without new events
        time.sleep(0.02)
    stats = pub.stats()
    pub.close(5)
    assert stats["mode"] == "up" and stats["sent"] > 0 and stats["replayed"] >= 100, stats


def test_flushes_that_time_out_during_an_outage_do_not_pile_up(tmp_path: Path) -> None:
    """An agent flushing with a short timeout after every event while Redis is away: the
    timed-out flushes were parked for the whole outage, crowding events out of the queue and
    slowing the sender to one marker per step (found in review)."""
    pub = Publisher(quick_settings(redis_url="redis://127.0.0.1:1/0", spool_dir=tmp_path / "spool"))
    for i in range(20_000):
        pub.sync_mismatch("r")
        assert pub.flush(0) is False
        if i % 200 == 0:
            time.sleep(0.01)  # an agent's pace, not a burst beyond the queue
    wait_for(lambda: pub.stats()["spooled"] == 20_000)
    stats = pub.stats()
    assert not any(v for k, v in stats.items() if k.startswith("dropped_")), stats
    sender = pub._outbox._sender
    assert sender is not None and len(sender._parked) < 100
    pub.close(1)
