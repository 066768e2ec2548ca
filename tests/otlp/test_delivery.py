"""What lands, where, and how often: an export sent twice is counted once after a worker drains
it into PostgreSQL; events go to their shard on one Redis and on a Redis Cluster."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis

from contract.keys import Keys
from tests.ingest.helpers import drain
from tests.ingest.helpers import settings as worker_settings
from tests.otlp.payloads import chat_span, chats, encoded, request
from tests.otlp.serving import JSON, PROTOBUF, otlp_settings, routed_events, serving


def totals(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    row = conn.execute("SELECT count(*), coalesce(sum(prompt_tokens), 0) FROM round_metrics").fetchone()
    sessions = conn.execute("SELECT coalesce(sum(prompt_tokens), 0) FROM session_metrics").fetchone()
    assert row is not None and sessions is not None
    return (*row, sessions[0])


@pytest.mark.parametrize("shards", [1, 2])
def test_the_same_export_sent_twice_is_counted_once(
    db_url: str, redis_url: str, key_prefix: str, redis_client: redis.Redis, tmp_path: Path, shards: int
) -> None:
    export = request(*(chat_span(1, i) for i in range(1, 4)), *(chat_span(2, i) for i in range(10, 12)))
    stream = f"{key_prefix}:events"
    with serving(otlp_settings(redis_url, stream, tmp_path, shards)) as receiver:
        first = receiver.post(encoded(export, PROTOBUF))
        again = receiver.post(encoded(export, JSON), JSON)  # a client re-sending after a lost answer
    assert first.status_code == again.status_code == 200
    keys = Keys(stream, shards)
    landed = sum(redis_client.xlen(s) for s in keys.streams)
    assert landed > 0 and landed % 2 == 0  # both exports are in the stream...
    drain(worker_settings(db_url, redis_url, key_prefix, shards=shards))
    with psycopg.connect(db_url) as conn:
        assert totals(conn) == (5, 500, 500)  # ...and counted once


def test_events_go_to_their_shards_on_one_redis(
    redis_url: str, key_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    keys = Keys(f"{key_prefix}:events", 2)
    with serving(otlp_settings(redis_url, keys.stream, tmp_path, 2)) as receiver:
        for trace in range(1, 9):  # several sessions, so both shards get some
            assert receiver.post(encoded(chats(2, trace=trace), PROTOBUF)).status_code == 200
    assert routed_events(redis_client, keys) >= 16
    assert all(redis_client.xlen(s) > 0 for s in keys.streams)
    assert redis_client.exists(keys.stream) == 0  # nothing on the base stream with K > 1
