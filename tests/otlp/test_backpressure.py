"""503 with Retry-After instead of loss or unbounded memory: while Redis is away, while the
backlog is over its bound, while the in-flight cap is reached; 200 again once that is over."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis

from contract.codec import STREAM_FIELD, decode
from producer.otlp.decode import decode_protobuf
from producer.otlp.mapping import map_spans
from producer.otlp.settings import OtlpSettings
from producer.settings import ProducerSettings
from tests.otlp.payloads import chats, encoded
from tests.otlp.serving import PROTOBUF, serving, status_of, wait_for
from tests.producer.conftest import RedisServer


def quick(redis_url: str, stream: str, tmp_path: Path, **values: object) -> OtlpSettings:
    producer = ProducerSettings(
        redis_url=redis_url,
        stream=stream,
        spool_dir=tmp_path / "spool",
        socket_timeout=0.3,
        connect_timeout=0.3,
    )
    return OtlpSettings(producer=producer, publish_timeout=0.5, **values)  # type: ignore[arg-type]


def test_503_with_retry_after_while_redis_is_stopped_then_200_again(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    private_redis.start()
    stream = "otlp:events"
    body = encoded(chats(3), PROTOBUF)
    with serving(quick(private_redis.url, stream, tmp_path)) as receiver:
        assert receiver.post(body).status_code == 200
        private_redis.stop()
        for _ in range(3):  # the first finds out (after publish_timeout), the next are told at once
            response = receiver.post(encoded(chats(2, trace=2), PROTOBUF))
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
            code, message = status_of(response)
            assert code == 14 and "Redis" in message
        assert httpx.get(f"{receiver.url}/healthz").json()["redis"] == "down"
        private_redis.start()
        wait_for(lambda: receiver.post(encoded(chats(2, trace=3), PROTOBUF)).status_code == 200, timeout=15)
        text = httpx.get(f"{receiver.url}/metrics").text
    with private_redis.client() as client:
        assert client.xlen(stream) >= 2  # what was answered 200 after the restart is there
    refused = re.search(r'metrics_otlp_requests_refused_total\{reason="redis_unavailable"\} (\S+)', text)
    assert refused is not None and float(refused.group(1)) >= 3  # and the polls after the restart


def test_503_while_the_backlog_is_over_its_bound_then_200_once_drained(
    redis_url: str, key_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    stream = f"{key_prefix}:events"
    with serving(quick(redis_url, stream, tmp_path, max_backlog=5, group="workers")) as receiver:
        assert receiver.post(encoded(chats(4), PROTOBUF)).status_code == 200  # no group yet: XLEN counts
        response = wait_for(
            lambda: (r := receiver.post(encoded(chats(1, trace=9), PROTOBUF))).status_code == 503 and r
        )
        assert int(response.headers["retry-after"]) >= 1
        code, message = status_of(response)
        assert code == 14 and "over the bound of 5" in message
        # a worker takes and acks everything: lag and pending drop to 0
        redis_client.xgroup_create(stream, "workers", id="0")
        for _, entries in redis_client.xreadgroup("workers", "w", {stream: ">"}):
            redis_client.xack(stream, "workers", *[entry_id for entry_id, _ in entries])
        wait_for(lambda: receiver.post(encoded(chats(1, trace=10), PROTOBUF)).status_code == 200)


def test_503_when_the_in_flight_cap_is_reached(
    redis_url: str, key_prefix: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """One request holds the only slot while its body trickles in; another is told to come back."""
    go_on = threading.Event()
    body = encoded(chats(2), PROTOBUF)

    def trickle() -> Iterator[bytes]:
        yield body[:10]
        go_on.wait(10)
        yield body[10:]

    with serving(quick(redis_url, f"{key_prefix}:events", tmp_path, max_inflight=1)) as receiver:
        results: list[int] = []
        slow = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    f"{receiver.url}/v1/traces", content=trickle(), headers={"content-type": PROTOBUF}
                ).status_code
            )
        )
        slow.start()
        wait_for(lambda: receiver.app._inflight == 1)
        response = receiver.post(body)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "METRICS_OTLP_MAX_INFLIGHT" in status_of(response)[1]
        go_on.set()
        slow.join(10)
        assert results == [200]
        assert receiver.post(body).status_code == 200


def test_a_send_that_fails_is_retried_and_answered_200_when_redis_is_back_in_time(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis gone between admission and the send, back within publish_timeout: the same batches
    (same token and sequence) go again, the request is answered 200, its events are there once."""
    private_redis.start()
    stream = "otlp:events"
    settings = quick(private_redis.url, stream, tmp_path)
    settings = OtlpSettings(producer=settings.producer, publish_timeout=10.0)
    with serving(settings) as receiver:
        assert receiver.post(encoded(chats(1), PROTOBUF)).status_code == 200
        with private_redis.client() as client:
            before = client.xlen(stream)
        private_redis.stop()
        results: list[int] = []
        body = encoded(chats(3, trace=5), PROTOBUF)
        sender = threading.Thread(target=lambda: results.append(receiver.post(body).status_code))
        sender.start()
        wait_for(lambda: not receiver.app.publishing.redis_up)  # its first send failed
        private_redis.start()
        sender.join(20)
        assert results == [200]
    with private_redis.client() as client:
        landed = [decode(fields[STREAM_FIELD.encode()]).event_id for _, fields in client.xrange(stream)]
    # a restarted, empty Redis: the retried batch is all there is, each of its events once
    assert before > 0 and sorted(landed) == sorted(
        e.event_id for e in map_spans(decode_protobuf(body)).events
    )
