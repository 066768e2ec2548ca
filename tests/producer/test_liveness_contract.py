"""The Python producer keeps the liveness protocol as contract/liveness.py writes it down: the
key names spelled out from the documented template (not taken from Keys), one pair per deployment
whatever K, score = the producer's clock + the TTL, awaiting score = when the wait began."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from contract.liveness import HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_S
from producer import ProducerSettings, Publisher
from tests.producer.conftest import wait_for


def test_a_sharded_publisher_beats_and_marks_awaiting_on_the_documented_keys(
    redis_url: str, stream: str, tmp_path: Path, redis_client: redis.Redis
) -> None:
    settings = ProducerSettings(redis_url=redis_url, stream=stream, shards=3, spool_dir=tmp_path)
    assert (settings.heartbeat_interval, settings.heartbeat_ttl) == (HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_S)
    heartbeats, awaiting = f"{stream}:hints:active", f"{stream}:hints:awaiting"
    with Publisher(settings) as pub, pub.session("gpt-4o") as session:
        before = time.time()
        expiry = wait_for(lambda: redis_client.zscore(heartbeats, session.id))
        assert before - 1 < expiry - HEARTBEAT_TTL_S <= time.time()
        session.awaiting()
        since = wait_for(lambda: redis_client.zscore(awaiting, session.id))
        assert before - 1 < since <= time.time()
        assert redis_client.zscore(heartbeats, session.id)  # the beat goes on while it waits
    assert redis_client.zscore(heartbeats, session.id) is None  # session.completed: out of both
    assert redis_client.zscore(awaiting, session.id) is None
    assert sorted(k.decode() for k in redis_client.scan_iter(f"{stream}:hints:*")) == []
