"""Integration (real Redis): what the API publishes arrives in the contract's form."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
import redis

from contract import SessionCompleted
from producer import ProducerSettings, Publisher
from tests.producer.conftest import black_hole, quick_settings, read_stream, wait_for
from tests.producer.helpers import SAMPLES


def test_every_typed_call_arrives_as_a_contract_event(
    publisher: Publisher, redis_client: redis.Redis, stream: str
) -> None:
    for method in sorted(SAMPLES):
        if method != "session_completed":
            getattr(publisher, method)(**SAMPLES[method])
    publisher.session_completed("s-1", "awaiting_response")
    assert publisher.flush(10)
    events = read_stream(redis_client, stream)
    assert sorted(e.type for e in events) == sorted(m.replace("_", ".", 1) for m in SAMPLES)
    ids = [e.event_id for e in events]
    assert ids == sorted(ids)  # one publisher: stream order is publish order
    assert publisher.stats()["sent"] == len(SAMPLES)


def test_lifecycle_helpers_record_success_errors_and_cancellation(
    publisher: Publisher, redis_client: redis.Redis, stream: str
) -> None:
    with publisher.session("gpt-4o") as ok:
        with ok.round() as round_:
            with round_.tool("read_file"):
                pass
            with round_.tool("bash") as failed_tool:
                failed_tool.fail("exit 1")
            round_.usage(100, 20)
            round_.compressed(500)
        ok.message_count(3)
    with (
        pytest.raises(RuntimeError),
        publisher.session("gpt-4o") as broken,
        broken.round() as bad_round,
        bad_round.tool("grep"),
    ):
        raise RuntimeError("no such file")
    with pytest.raises(KeyboardInterrupt), publisher.session("m") as cancelled:
        raise KeyboardInterrupt
    with publisher.session("m") as waiting:
        waiting.awaiting()
    with pytest.raises(TimeoutError), publisher.forward("/v1/chat", "m", stream=True):
        raise TimeoutError("upstream")
    with publisher.forward("/v1/chat", "m") as forward:
        forward.complete(429)
    assert publisher.flush(10)
    events = read_stream(redis_client, stream)
    by_type = Counter(e.type for e in events)
    assert by_type["session.started"] == by_type["session.completed"] == 4
    status = {e.session_id: e.status for e in events if isinstance(e, SessionCompleted)}
    assert status == {
        ok.id: "completed",
        broken.id: "error",
        cancelled.id: "cancelled",
        waiting.id: "awaiting_response",
    }
    rounds = {e.round_id: e for e in events if e.type == "round.completed"}  # type: ignore[union-attr]
    assert rounds[round_.id].status == "success" and rounds[round_.id].usage.total_tokens == 120
    assert (
        rounds[bad_round.id].status == "error" and "RuntimeError: no such file" in rounds[bad_round.id].error
    )
    tools = [(e.success, e.error) for e in events if e.type == "tool.completed"]  # type: ignore[union-attr]
    assert tools == [(True, None), (False, "exit 1"), (False, "RuntimeError: no such file")]
    forwards = [(e.status, e.status_code) for e in events if e.type == "forward.completed"]  # type: ignore[union-attr]
    assert forwards == [("timeout", None), ("error", 429)]


def test_nothing_is_published_for_a_completed_session_until_a_start_reopens_it(
    publisher: Publisher, redis_client: redis.Redis, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    publisher.session_started("s", "m")
    publisher.session_completed("s")
    publisher.round_started("r", "s", "m")
    publisher.session_message_count("s", 4)
    publisher.session_completed("s", "error")
    assert publisher.stats()["open_sessions"] == 0  # no heartbeat for it either
    # The chat's next turn under the same id: the seed's start_session re-opens it, and so do we
    # (dropping it lost the whole turn, found in review).
    publisher.session_started("s", "m")
    publisher.round_started("r2", "s", "m")
    assert publisher.flush(10)
    assert [e.type for e in read_stream(redis_client, stream)] == [
        "session.started",
        "session.completed",
        "session.started",
        "round.started",
    ]
    assert publisher.stats()["dropped_after_complete"] == 3
    assert publisher.stats()["open_sessions"] == 1
    assert sum("after its session.completed" in r.message for r in caplog.records) == 1


def test_liveness_hints_follow_the_session(
    redis_url: str, stream: str, tmp_path, redis_client: redis.Redis
) -> None:
    settings = ProducerSettings(
        redis_url=redis_url, stream=stream, spool_dir=tmp_path, heartbeat_interval=0.2, heartbeat_ttl=1.0
    )
    pub = Publisher(settings)
    keys = settings.keys
    try:
        with pub.session("m") as session:
            first = wait_for(lambda: redis_client.zscore(keys.active_sessions, session.id))
            assert time.time() < first <= time.time() + 1.0
            wait_for(lambda: redis_client.zscore(keys.active_sessions, session.id) > first)  # refreshed
            session.awaiting()
            since = wait_for(lambda: redis_client.zscore(keys.awaiting_sessions, session.id))
            assert abs(since - time.time()) < 5
            session.resumed()
            wait_for(lambda: redis_client.zscore(keys.awaiting_sessions, session.id) is None)
            session.awaiting()
            wait_for(lambda: redis_client.zscore(keys.awaiting_sessions, session.id))
        wait_for(lambda: redis_client.zscore(keys.active_sessions, session.id) is None)
        wait_for(lambda: redis_client.zscore(keys.awaiting_sessions, session.id) is None)
        pub.session_started("left-open", "m")
        wait_for(lambda: redis_client.zscore(keys.active_sessions, "left-open"))
    finally:
        pub.close(5)
    assert redis_client.zscore(keys.active_sessions, "left-open") is None  # close releases it


def test_shards_spread_sessions_and_keep_each_session_on_one(
    redis_url: str, stream: str, tmp_path, redis_client: redis.Redis
) -> None:
    settings = ProducerSettings(redis_url=redis_url, stream=stream, shards=4, spool_dir=tmp_path)
    with Publisher(settings) as pub:
        sessions = [f"session-{i}" for i in range(40)]
        for session_id in sessions:
            pub.session_started(session_id, "m")
            pub.round_started(f"{session_id}-r", session_id, "m")
        assert pub.flush(10)
    assert settings.keys.streams == [f"{stream}:{{{i}}}" for i in range(4)]
    seen: dict[str, set[str]] = {}
    for shard in settings.keys.streams:
        for event in read_stream(redis_client, shard):
            seen.setdefault(event.session_id, set()).add(shard)  # type: ignore[union-attr]
    assert set(seen) == set(sessions)
    assert all(len(shards) == 1 for shards in seen.values())
    assert len({next(iter(s)) for s in seen.values()}) == 4


def test_close_sends_what_is_queued_and_later_calls_are_counted(
    settings: ProducerSettings, redis_client: redis.Redis, stream: str
) -> None:
    pub = Publisher(settings)
    for i in range(3000):
        pub.sync_mismatch(f"r{i}")
    assert pub.close(10)
    assert redis_client.xlen(stream) == 3000
    pub.sync_mismatch("late")
    assert pub.stats()["dropped_closed"] == 1
    assert pub.flush(1) is True and pub.close(1) is False


def test_a_full_queue_keeps_every_event_without_blocking(tmp_path) -> None:
    with black_hole() as port:  # the sender hangs in its first send for socket_timeout
        pub = Publisher(
            quick_settings(
                redis_url=f"redis://127.0.0.1:{port}/0",
                spool_dir=tmp_path,
                queue_size=100,
                socket_timeout=1.0,
            )
        )
        pub.sync_mismatch("first")
        wait_for(lambda: pub.queued == 0)  # taken: the sender now waits for an answer
        started = time.perf_counter()
        for i in range(150):
            pub.sync_mismatch(f"r{i}")
        assert time.perf_counter() - started < 0.5  # below twice the queue size, nobody waits
        assert pub.queued == 150 and "dropped_queue_full" not in pub.stats()
        wait_for(lambda: pub.stats()["spooled"] == 151)  # after the timeout, all of them go to disk
        pub.close(2)


def test_at_twice_the_queue_size_a_call_waits_one_sender_step_then_keeps_the_event(tmp_path) -> None:
    with black_hole() as port:
        pub = Publisher(
            quick_settings(
                redis_url=f"redis://127.0.0.1:{port}/0", spool_dir=tmp_path, queue_size=10, socket_timeout=0.5
            )
        )
        pub.sync_mismatch("first")
        wait_for(lambda: pub.queued == 0)
        started = time.perf_counter()
        for i in range(30):
            pub.sync_mismatch(f"r{i}")
        waited = time.perf_counter() - started
        assert waited < 0.5 + 0.5 + 0.3, waited  # socket_timeout + 0.5 s at most, once
        wait_for(lambda: pub.stats()["spooled"] == 31)
        stats = pub.stats()
        assert not any(v for k, v in stats.items() if k.startswith("dropped_")), stats
        pub.close(2)


def test_asyncio_code_calls_without_blocking_the_loop(
    publisher: Publisher, redis_client: redis.Redis, stream: str
) -> None:
    async def agent() -> float:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        async with publisher.session("m") as session, session.round() as round_:
            round_.usage(1, 1)
        worst = 0.0
        for i in range(2000):
            start = time.perf_counter()
            publisher.sync_mismatch(f"r{i}")
            worst = max(worst, time.perf_counter() - start)
        assert await publisher.aflush(10)
        task.cancel()
        assert ticks > 0  # the loop kept running while aflush waited
        return worst

    worst = asyncio.run(agent())
    assert worst < 0.05
    assert redis_client.xlen(stream) == 2004
